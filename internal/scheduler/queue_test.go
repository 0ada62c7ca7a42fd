package scheduler

import (
	"testing"
	"time"
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
	q.Park(entry{key: "parked"})
	if a, u := q.Lens(); a != 0 || u != 1 {
		t.Fatalf("after park: active %d parked %d", a, u)
	}
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
