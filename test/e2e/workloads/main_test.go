// Package workloads tests the controller manager inside a real `skiff
// server` with hollow nodes playing the kubelets: Deployments and their
// rollouts (also through real kubectl), cascading deletion, namespace
// deletion, node health and eviction, node IPAM and ServiceAccounts.
package workloads

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
	nodes  *hollownode.Nodes
)

// nodeCount hollow nodes serve every test in this package.
const nodeCount = 3

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// A short grace period keeps the node-health test quick.
	return framework.RunWithServer(m, &srv, "--node-monitor-grace-period", "8s")
}

// setup starts the hollow nodes once (the server is started by TestMain).
func setup(t *testing.T) (context.Context, kubernetes.Interface) {
	t.Helper()
	if client == nil {
		client = srv.Client()
		n, err := hollownode.New(hollownode.Config{Client: client, Count: nodeCount, NamePrefix: "wl-node-",
			LeaseRenewInterval: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		go n.Run(context.Background())
		select {
		case <-n.Ready():
		case <-time.After(60 * time.Second):
			t.Fatal("hollow nodes not ready")
		}
		nodes = n
	}
	return framework.Context(t, 3*time.Minute), client
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
