package scheduler_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// Two servers on one etcd run one active scheduler between them; when the
// active one's process stops, the other takes over.
func TestLeaderHandover(t *testing.T) {
	_, flag := framework.StartEtcd(t)
	a := framework.StartServer(t, flag)
	b := framework.StartServer(t, flag)
	ctx := framework.Context(t, 2*time.Minute)
	cs := a.Client()
	holder := func() string {
		l, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, "default-scheduler", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	deadline := time.Now().Add(20 * time.Second)
	for holder() == "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	first := holder()
	var active, standby *framework.Server
	switch {
	case strings.HasSuffix(first, fmt.Sprintf(":%d", a.Port)):
		active, standby = a, b
	case strings.HasSuffix(first, fmt.Sprintf(":%d", b.Port)):
		active, standby = b, a
	default:
		t.Fatalf("lease holder %q is neither server (%d, %d)", first, a.Port, b.Port)
	}
	if _, err := standby.Client().CoreV1().Nodes().Create(ctx, node("n1", "4", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := standby.Client().CoreV1().Pods("default").Create(ctx, pod("before", "100m"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, standby.Client(), "default", "before", bound, "bound by the active scheduler")

	active.Stop() // releases the lease on a clean stop
	if _, err := standby.Client().CoreV1().Pods("default").Create(ctx, pod("after", "100m"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A released lease is taken at the standby's next retry (2 s); allow
	// for a lost release too (lease duration 15 s).
	deadline = time.Now().Add(30 * time.Second)
	for {
		p, err := standby.Client().CoreV1().Pods("default").Get(ctx, "after", metav1.GetOptions{})
		if err == nil && p.Spec.NodeName != "" {
			t.Logf("bound %v after the active server stopped", 30*time.Second-time.Until(deadline))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pod not bound within 30 s of the active scheduler's server stopping")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cs = standby.Client()
	if h := holder(); !strings.HasSuffix(h, fmt.Sprintf(":%d", standby.Port)) {
		t.Errorf("lease holder after handover %q, want the remaining server", h)
	}
}
