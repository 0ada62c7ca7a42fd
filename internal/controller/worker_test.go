package controller

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

func TestRunWorkersProcessesUntilCancelled(t *testing.T) {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	var handled atomic.Int32
	next := func(ctx context.Context) bool {
		k, quit := q.Get()
		if quit {
			return false
		}
		defer q.Done(k)
		handled.Add(1)
		return true
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		RunWorkers(ctx, q, 2, []cache.InformerSynced{func() bool { return true }}, next)
		close(done)
	}()
	for _, k := range []string{"a", "b", "c"} {
		q.Add(k)
	}
	deadline := time.Now().Add(5 * time.Second)
	for handled.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if handled.Load() != 3 {
		t.Fatalf("handled %d keys, want 3", handled.Load())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunWorkers did not return after cancel")
	}
	if !q.ShuttingDown() {
		t.Fatal("the queue must be shut down")
	}
}
