package controller

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller/metrics"
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

// recordingQueue records what ProcessNext does with the key it hands out.
type recordingQueue struct {
	key                   string
	quit                  bool
	done, forgot, limited int
	after                 time.Duration
}

func (q *recordingQueue) Get() (string, bool)                { return q.key, q.quit }
func (q *recordingQueue) Done(string)                        { q.done++ }
func (q *recordingQueue) Forget(string)                      { q.forgot++ }
func (q *recordingQueue) AddRateLimited(string)              { q.limited++ }
func (q *recordingQueue) AddAfter(_ string, d time.Duration) { q.after = d }

func TestProcessNext(t *testing.T) {
	m := metrics.New()
	for _, tc := range []struct {
		name            string
		res             Result
		err             error
		forgot, limited int
		after           time.Duration
	}{
		{name: "success", forgot: 1},
		{name: "failure retries with back-off", err: errors.New("boom"), limited: 1},
		{name: "in progress keeps back-off", res: Result{Requeue: true}, limited: 1},
		{name: "deadline", res: Result{RequeueAfter: 3 * time.Second}, forgot: 1, after: 3 * time.Second},
		{name: "failure wins over deadline", res: Result{RequeueAfter: time.Second}, err: errors.New("boom"), limited: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &recordingQueue{key: "ns/a"}
			var got string
			more := ProcessNext(context.Background(), q, "test", m, nil, func(_ context.Context, k string) (Result, error) {
				got = k
				return tc.res, tc.err
			})
			if !more || got != "ns/a" || q.done != 1 {
				t.Fatalf("more=%v key=%q done=%d, want true ns/a 1", more, got, q.done)
			}
			if q.forgot != tc.forgot || q.limited != tc.limited || q.after != tc.after {
				t.Fatalf("forgot=%d limited=%d after=%v, want %d %d %v", q.forgot, q.limited, q.after, tc.forgot, tc.limited, tc.after)
			}
		})
	}
	q := &recordingQueue{quit: true}
	if ProcessNext(context.Background(), q, "test", m, nil, NoResult(func(context.Context, string) error { t.Fatal("synced after shutdown"); return nil })) {
		t.Fatal("ProcessNext must report false once the queue is shut down")
	}
}
