package controller

import (
	"context"
	"log/slog"
	"sync"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Queue is the part of a workqueue RunWorkers needs.
type Queue interface{ ShutDown() }

// RunWorkers is the common body of a controller's Run: it waits for the
// informer caches, runs workers that call next until it reports the queue
// shut down, and on ctx's end shuts q down and waits for the workers.
func RunWorkers(ctx context.Context, q Queue, workers int, synced []cache.InformerSynced, next func(context.Context) bool) {
	defer utilruntime.HandleCrash()
	defer q.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for next(ctx) {
				}
			}, time.Second)
		}()
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
}

// RateLimitedQueue is the part of a typed rate-limited workqueue
// ProcessNext needs.
type RateLimitedQueue[T comparable] interface {
	Get() (T, bool)
	Done(T)
	Forget(T)
	AddRateLimited(T)
	AddAfter(T, time.Duration)
}

// Result is what a sync asks for beyond success or failure.
type Result struct {
	// RequeueAfter, when positive, looks at the key again after that
	// long (a deadline the controller waits for).
	RequeueAfter time.Duration
	// Requeue looks at the key again with the queue's back-off, without
	// counting it as a failure (work that is still in progress).
	Requeue bool
}

// ProcessNext takes one key off q and syncs it, recording the sync in m
// under name: a failed sync is retried with back-off, a successful one
// resets the key's back-off and is requeued as its Result asks. It
// reports false once q is shut down.
func ProcessNext[T comparable](ctx context.Context, q RateLimitedQueue[T], name string, m *metrics.Metrics, log *slog.Logger,
	sync func(context.Context, T) (Result, error)) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	start := time.Now()
	res, err := sync(ctx, key)
	m.ObserveSync(name, start, err)
	switch {
	case err != nil:
		if log != nil {
			log.Debug("sync failed, will retry", "controller", name, "key", key, "err", err)
		}
		q.AddRateLimited(key)
	case res.Requeue:
		q.AddRateLimited(key)
	default:
		q.Forget(key)
		if res.RequeueAfter > 0 {
			q.AddAfter(key, res.RequeueAfter)
		}
	}
	return true
}

// NoResult adapts a sync that only succeeds or fails to ProcessNext.
func NoResult[T comparable](sync func(context.Context, T) error) func(context.Context, T) (Result, error) {
	return func(ctx context.Context, key T) (Result, error) { return Result{}, sync(ctx, key) }
}
