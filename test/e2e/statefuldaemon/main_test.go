// Package statefuldaemon tests the StatefulSet, DaemonSet and
// ReplicationController controllers inside a real `skiff server` with
// hollow nodes playing the kubelets: ordered creation, claims, scale-down
// in reverse and partitioned rolling updates of a StatefulSet; one daemon
// pod per node, also on a node added later, and a DaemonSet rollout; both
// through the real kubectl's rollout status and history.
package statefuldaemon

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/hollownode"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

var (
	srv    *framework.Server
	client kubernetes.Interface
)

// nodeCount hollow nodes serve every test in this package.
const nodeCount = 3

func TestMain(m *testing.M) {
	os.Exit(framework.RunWithServer(m, &srv))
}

// setup starts the hollow nodes once (the server is started by TestMain).
func setup(t *testing.T) (context.Context, kubernetes.Interface) {
	t.Helper()
	if client == nil {
		client = srv.Client()
		startNodes(t, context.Background(), "sd-node-", nodeCount)
	}
	return framework.Context(t, 2*time.Minute), client
}

// startNodes runs count hollow nodes named <prefix><i> until ctx ends and
// waits until they are registered.
func startNodes(t *testing.T, ctx context.Context, prefix string, count int) {
	t.Helper()
	n, err := hollownode.New(hollownode.Config{Client: client, Count: count, NamePrefix: prefix,
		LeaseRenewInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	go n.Run(ctx)
	select {
	case <-n.Ready():
	case <-time.After(60 * time.Second):
		t.Fatalf("hollow nodes %s* not ready", prefix)
	}
}

// eventually polls cond every 100 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s (last error: %v)", d, what, lastErr)
}

func namespace(t *testing.T, ctx context.Context, cs kubernetes.Interface, name string) string {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// dump logs the objects of a namespace (for a failure's context).
func dump(t *testing.T, ns string) {
	t.Helper()
	k := srv.NewKubectl(t, "1.32")
	r := k.Run("-n", ns, "get", "statefulsets,daemonsets,pods,controllerrevisions,pvc,events", "-o", "wide")
	t.Logf("objects in %s:\n%s%s", ns, r.Stdout, r.Stderr)
	r = k.Run("-n", ns, "get", "statefulsets,daemonsets", "-o", "jsonpath={range .items[*]}{.metadata.name} {.status}{\"\\n\"}{end}")
	t.Logf("status:\n%s%s", r.Stdout, r.Stderr)
}
