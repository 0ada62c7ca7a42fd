package controller

import (
	"context"
	"sync"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
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
