package garbagecollector

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// ignored resources have no owners worth tracking and are numerous.
var ignored = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

type resourceInfo struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

type eventType int

const (
	addEvent eventType = iota
	updateEvent
	deleteEvent
	virtualAbsent // a worker found a virtual owner does not exist
)

type event struct {
	typ eventType
	gvk schema.GroupVersionKind
	obj *metav1.PartialObjectMetadata
	uid types.UID // virtualAbsent
}

// Controller is the garbage collector.
type Controller struct {
	meta    metadata.Interface
	log     *slog.Logger
	metrics *metrics.Metrics
	kinds   map[schema.GroupVersionKind]resourceInfo
	synced  []cache.InformerSynced
	graph   *graph
	events  *eventQueue
	del     workqueue.TypedRateLimitingInterface[types.UID]
	orphan  workqueue.TypedRateLimitingInterface[types.UID]
	absentM sync.Mutex
	absent  sets.Set[types.UID] // owners known not to exist (UIDs never return)
}

// New discovers every listable, watchable, deletable resource and watches
// its metadata.
func New(cc *controller.Context) (*Controller, error) {
	c := &Controller{
		meta:    cc.Metadata,
		log:     cc.Logger.With("controller", "garbagecollector"),
		metrics: cc.Metrics,
		kinds:   map[schema.GroupVersionKind]resourceInfo{},
		graph:   newGraph(),
		events:  newEventQueue(),
		del: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.UID](),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "garbage_collector_attempt_to_delete"}),
		orphan: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.UID](),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "garbage_collector_attempt_to_orphan"}),
		absent: sets.New[types.UID](),
	}
	lists, err := cc.Discovery.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover resources: %w", err)
	}
	for _, l := range discovery.FilteredBy(discovery.SupportsAllVerbs{Verbs: []string{"list", "watch", "delete"}}, lists) {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			gvr := gv.WithResource(r.Name)
			if ignored[gvr.GroupResource()] {
				continue
			}
			gvk := gv.WithKind(r.Kind)
			c.kinds[gvk] = resourceInfo{gvr: gvr, namespaced: r.Namespaced}
			inf := cc.MetadataInformers.ForResource(gvr).Informer()
			if _, err := inf.AddEventHandler(c.handler(gvk)); err != nil {
				return nil, err
			}
			c.synced = append(c.synced, inf.HasSynced)
		}
	}
	return c, nil
}

func (c *Controller) handler(gvk schema.GroupVersionKind) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				c.events.push(event{typ: addEvent, gvk: gvk, obj: m})
			}
		},
		UpdateFunc: func(_, obj any) {
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				c.events.push(event{typ: updateEvent, gvk: gvk, obj: m})
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				c.events.push(event{typ: deleteEvent, gvk: gvk, obj: m})
			}
		},
	}
}

// Run builds the graph and collects garbage until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.del.ShutDown()
	defer c.orphan.ShutDown()
	go func() {
		<-ctx.Done()
		c.events.close()
	}()
	go c.buildGraph()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	// Let the graph take in the initial lists before acting on it.
	for c.events.len() > 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	c.log.Debug("garbage collector graph synced", "resources", len(c.kinds))
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for c.process(ctx, c.del, c.attemptToDelete) {
				}
			}, time.Second)
		}()
	}
	for i := 0; i < max(1, workers/4); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for c.process(ctx, c.orphan, c.attemptToOrphan) {
				}
			}, time.Second)
		}()
	}
	<-ctx.Done()
	c.del.ShutDown()
	c.orphan.ShutDown()
	wg.Wait()
}

func (c *Controller) process(ctx context.Context, q workqueue.TypedRateLimitingInterface[types.UID], fn func(context.Context, types.UID) error) bool {
	uid, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(uid)
	start := time.Now()
	err := fn(ctx, uid)
	c.metrics.ObserveSync("garbagecollector", start, err)
	if err != nil {
		c.log.Debug("garbage collection failed, will retry", "uid", uid, "err", err)
		q.AddRateLimited(uid)
		return true
	}
	q.Forget(uid)
	return true
}

func hasFinalizer(m metav1.Object, f string) bool {
	for _, x := range m.GetFinalizers() {
		if x == f {
			return true
		}
	}
	return false
}

// eventQueue is an unbounded FIFO of informer events for the graph
// builder, so informer handlers never block.
type eventQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []event
	closed bool
}

func newEventQueue() *eventQueue {
	q := &eventQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *eventQueue) push(e event) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *eventQueue) pop() (event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return event{}, false
	}
	e := q.items[0]
	q.items[0] = event{}
	q.items = q.items[1:]
	return e, true
}

func (q *eventQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

func isGone(err error) bool { return apierrors.IsNotFound(err) || apierrors.IsGone(err) }
