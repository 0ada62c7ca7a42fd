package cacher

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/etcd"
)

// newSmallBufferStore is a pod cache whose watchers queue 4 events.
func newSmallBufferStore(t *testing.T) *Cacher {
	t.Helper()
	under, err := etcd.New(etcd.Config{
		Client:      shared.Client(),
		Codec:       etcd.DefaultCodec(corev1.SchemeGroupVersion),
		NewFunc:     func() runtime.Object { return &corev1.Pod{} },
		NewListFunc: func() runtime.Object { return &corev1.PodList{} },
		Prefix:      fmt.Sprintf("/cacher-test-%d", prefixes.Add(1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), Config{Storage: under, Prefix: "/pods",
		NewFunc:     func() runtime.Object { return &corev1.Pod{} },
		NewListFunc: func() runtime.Object { return &corev1.PodList{} }, WatcherBuffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	<-c.Ready()
	return c
}

func createPods(t *testing.T, s storage.Interface, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		p := &corev1.Pod{}
		p.Name, p.Namespace = fmt.Sprintf("%s%d", prefix, i), "ns"
		if err := s.Create(context.Background(), "/pods/ns/"+p.Name, p, &corev1.Pod{}); err != nil {
			t.Fatal(err)
		}
	}
}

// drain reads names of ADDED pods until the channel closes or idle passes.
func drain(ch <-chan watch.Event, idle time.Duration) (names []string, closed bool) {
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return names, true
			}
			obj := ev.Object
			if co, ok := obj.(*cachingObject); ok {
				obj = co.SharedObject()
			}
			if p, ok := obj.(*corev1.Pod); ok && ev.Type == watch.Added {
				names = append(names, p.Name)
			}
		case <-time.After(idle):
			return names, false
		}
	}
}

// A watcher that falls behind for a moment is waited for (within the
// budget), not ended: it gets every event, in order.
func TestWatcherBehindForAMomentKeepsItsWatch(t *testing.T) {
	c := newSmallBufferStore(t)
	cur, _ := c.CurrentRevision(context.Background())
	w, err := c.Watch(context.Background(), "/pods/", storage.ListOptions{Recursive: true, ResourceVersion: fmt.Sprint(cur)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// The writes below queue events faster than nobody reads them: 4 in
	// the buffer plus 16 in the result channel fill up before the reader
	// starts, 20 ms later.
	done := make(chan []string)
	go func() {
		time.Sleep(20 * time.Millisecond)
		names, _ := drain(w.ResultChan(), 2*time.Second)
		done <- names
	}()
	createPods(t, c, "p", 60)
	names := <-done
	if len(names) != 60 {
		t.Fatalf("got %d of 60 events: %v", len(names), names)
	}
	for i, n := range names {
		if n != fmt.Sprintf("p%d", i) {
			t.Fatalf("event %d is %s, want p%d", i, n, i)
		}
	}
}

// A watcher that stops reading is ended once the budget is spent, and the
// others keep getting events without waiting for it for long.
func TestStuckWatcherIsEndedAfterTheBudget(t *testing.T) {
	c := newSmallBufferStore(t)
	cur, _ := c.CurrentRevision(context.Background())
	opts := storage.ListOptions{Recursive: true, ResourceVersion: fmt.Sprint(cur)}
	stuck, err := c.Watch(context.Background(), "/pods/", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Stop()
	live, err := c.Watch(context.Background(), "/pods/", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Stop()
	got := make(chan []string)
	go func() { names, _ := drain(live.ResultChan(), 3*time.Second); got <- names }()
	start := time.Now()
	createPods(t, c, "q", 100)
	if names := <-got; len(names) != 100 {
		t.Fatalf("the reading watcher got %d of 100 events", len(names))
	}
	if took := time.Since(start); took > 3*time.Second+2*time.Second {
		t.Errorf("100 creates with a stuck watcher took %v", took)
	}
	// The stuck one holds what fitted, then its channel closes.
	names, closed := drain(stuck.ResultChan(), 2*time.Second)
	if !closed {
		t.Fatalf("the stuck watcher was not ended (read %d events)", len(names))
	}
	if len(names) >= 100 {
		t.Fatalf("the stuck watcher got all %d events; it should have been ended", len(names))
	}
}

func TestTimeBudget(t *testing.T) {
	b := newTimeBudget()
	if got := b.take(); got < 99*time.Millisecond || got > 100*time.Millisecond {
		t.Fatalf("first take: %v, want the full 100ms", got)
	}
	if got := b.take(); got > 5*time.Millisecond {
		t.Fatalf("take right after: %v, want ~0", got)
	}
	b.giveBack(30 * time.Millisecond)
	if got := b.take(); got < 30*time.Millisecond || got > 35*time.Millisecond {
		t.Fatalf("after giving back 30ms: %v", got)
	}
	b.last = b.last.Add(-time.Second) // a second later: 50ms more
	if got := b.take(); got < 50*time.Millisecond || got > 55*time.Millisecond {
		t.Fatalf("a second later: %v, want ~50ms", got)
	}
	b.last = b.last.Add(-10 * time.Second)
	if got := b.take(); got != 100*time.Millisecond {
		t.Fatalf("after long: %v, want the 100ms cap", got)
	}
}
