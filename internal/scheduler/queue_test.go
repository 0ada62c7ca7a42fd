package scheduler

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestQueueOrderParkAndWake(t *testing.T) {
	q := newQueue()
	now := time.Now()
	q.Add(entry{key: "low-old", priority: 0, created: now.Add(-time.Hour)})
	q.Add(entry{key: "high", priority: 100, created: now})
	q.Add(entry{key: "low-new", priority: 0, created: now})
	q.Add(entry{key: "high", priority: 100, created: now}) // duplicate is ignored
	var order []string
	for i := 0; i < 3; i++ {
		e, _ := q.Pop()
		order = append(order, e.key)
	}
	if order[0] != "high" || order[1] != "low-old" || order[2] != "low-new" {
		t.Fatalf("pop order %v", order)
	}
	q.Park(entry{key: "parked"}, nil)
	if a, u := q.Lens(); a != 0 || u != 1 {
		t.Fatalf("after park: active %d parked %d", a, u)
	}
	q.now = func() time.Time { return now.Add(time.Hour) } // past its backoff
	q.Wake()
	if e, _ := q.Pop(); e.key != "parked" {
		t.Fatalf("woken pod %q", e.key)
	}
	done := make(chan bool)
	go func() { _, ok := q.Pop(); done <- ok }()
	q.Close()
	if ok := <-done; ok {
		t.Fatal("Pop after Close returned a pod")
	}
}

func TestPopUntilStops(t *testing.T) {
	q := newQueue()
	stop := make(chan struct{})
	got := make(chan bool)
	go func() { _, ok := q.PopUntil(stop); got <- ok }()
	close(stop)
	if ok := <-got; ok {
		t.Fatal("PopUntil returned a pod after stop")
	}
	// The queue still works for the next leader term.
	q.Add(entry{key: "a"})
	if e, ok := q.PopUntil(make(chan struct{})); !ok || e.key != "a" {
		t.Fatalf("after a stopped term: %v %v", e, ok)
	}
}

func TestWakeForRejectorsAndBackoff(t *testing.T) {
	q := newQueue()
	now := time.Now()
	q.now = func() time.Time { return now }
	a, _ := func() (entry, bool) { q.Add(entry{key: "affinity"}); return q.Pop() }()
	b, _ := func() (entry, bool) { q.Add(entry{key: "resources"}); return q.Pop() }()
	q.Park(a, map[string]bool{"InterPodAffinity": true})
	q.Park(b, map[string]bool{"NodeResourcesFit": true})
	q.now = func() time.Time { return now.Add(time.Minute) }
	q.WakeFor("InterPodAffinity", "PodTopologySpread")
	if e, _ := q.Pop(); e.key != "affinity" || e.attempts != 1 {
		t.Fatalf("woken %+v", e)
	}
	if act, waiting := q.Lens(); act != 0 || waiting != 1 {
		t.Fatalf("active %d waiting %d", act, waiting)
	}
	// Within its backoff a woken pod waits for the timer.
	e, _ := func() (entry, bool) { q.Wake(); return q.Pop() }()
	if e.key != "resources" {
		t.Fatalf("woken %+v", e)
	}
	q.now = time.Now
	q.Park(e, nil)
	q.Wake()
	start := time.Now()
	if e, _ := q.Pop(); e.key != "resources" || e.attempts != 2 || time.Since(start) < time.Second {
		t.Fatalf("after backoff: %+v in %v", e, time.Since(start))
	}
	// A pod whose cycle saw a wake-up is retried, not parked.
	q.Add(entry{key: "racy"})
	e, _ = q.Pop()
	q.WakeFor("InterPodAffinity")
	q.Park(e, map[string]bool{"NodeResourcesFit": true})
	if e, _ := q.Pop(); e.key != "racy" {
		t.Fatalf("racy pod %+v", e)
	}
	q.Close()
}

func TestNodeFitChanged(t *testing.T) {
	base := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}
	heartbeat := base.DeepCopy()
	heartbeat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
	if nodeFitChanged(base, heartbeat) {
		t.Error("a heartbeat must not wake parked pods")
	}
	for name, mutate := range map[string]func(*corev1.Node){
		"taint":         func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}} },
		"label":         func(n *corev1.Node) { n.Labels["zone"] = "z" },
		"unschedulable": func(n *corev1.Node) { n.Spec.Unschedulable = true },
		"allocatable":   func(n *corev1.Node) { n.Status.Allocatable[corev1.ResourceCPU] = resource.MustParse("4") },
	} {
		n := base.DeepCopy()
		mutate(n)
		if !nodeFitChanged(base, n) {
			t.Errorf("%s change must wake parked pods", name)
		}
	}
}
