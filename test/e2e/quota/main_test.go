// Package quota tests the resource quota, disruption and pod garbage
// collector controllers inside a real cluster: a `skiff server` running the
// other controllers, hollow nodes in-process playing the kubelets, and a
// standalone `skiff controller-manager` running these three with a small
// --terminated-pod-gc-threshold and --metrics-bind-address, so the flags
// and the metrics endpoint are exercised too.
package quota

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/hollownode"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

var (
	srv         *framework.Server
	client      kubernetes.Interface
	setupOnce   sync.Once
	cm          *exec.Cmd
	metricsAddr string
)

const (
	nodeCount = 3
	// gcThreshold is the standalone manager's --terminated-pod-gc-threshold.
	gcThreshold = 3
)

func TestMain(m *testing.M) {
	code := framework.RunWithServer(m, &srv, "--controllers", "*,-podgc,-resourcequota,-disruption")
	if cm != nil {
		cm.Process.Kill()
		cm.Wait()
	}
	os.Exit(code)
}

// setup starts the hollow nodes and the standalone controller manager once
// (the server is started by TestMain).
func setup(t *testing.T) (context.Context, kubernetes.Interface) {
	t.Helper()
	setupOnce.Do(func() {
		client = srv.Client()
		n, err := hollownode.New(hollownode.Config{Client: client, Count: nodeCount, NamePrefix: "quota-node-",
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
		metricsAddr = "127.0.0.1:" + strconv.Itoa(framework.FreePort(t))
		cm = exec.Command(framework.Binary(t), "controller-manager", "--kubeconfig", srv.Kubeconfig,
			"--leader-elect=false", "--controllers", "podgc,resourcequota,disruption",
			"--terminated-pod-gc-threshold", strconv.Itoa(gcThreshold), "--metrics-bind-address", metricsAddr)
		cm.Stderr = os.Stderr
		if err := framework.StartProcess(cm); err != nil {
			t.Fatal(err)
		}
	})
	if client == nil || cm == nil {
		t.Fatal("setup failed in an earlier test")
	}
	return framework.Context(t, 3*time.Minute), client
}

// eventually polls cond every 200 ms until it holds or d passes.
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
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s (last: %v)", d, what, lastErr)
}

func namespace(t *testing.T, ctx context.Context, cs kubernetes.Interface, name string) string {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// pod is a bare pod the hollow nodes run.
func pod(name string, labels map[string]string, cpu string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "app:1"}}}}
	if cpu != "" {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: mustQ(cpu)}
	}
	return p
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
