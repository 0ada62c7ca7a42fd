package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/endpointutil"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// DefaultBatchPeriod delays the sync a pod change triggers, so a burst of
// pod changes costs one round of writes.
const DefaultBatchPeriod = 100 * time.Millisecond

// errStaleCache asks for a retry once the slice cache caught up.
var errStaleCache = errors.New("endpointslice cache is out of date")

// Controller is the endpointslice controller.
type Controller struct {
	metrics     *metrics.Metrics
	client      kubernetes.Interface
	services    corelisters.ServiceLister
	pods        corelisters.PodLister
	nodes       corelisters.NodeLister
	slices      discoverylisters.EndpointSliceLister
	queue       workqueue.TypedRateLimitingInterface[string]
	recorder    record.EventRecorder
	log         *slog.Logger
	triggers    *endpointutil.TriggerTimeTracker
	tracker     *sliceTracker
	planner     *planner
	batchPeriod time.Duration
	synced      []cache.InformerSynced
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	svcInf := cc.Informers.Core().V1().Services()
	podInf := cc.Informers.Core().V1().Pods()
	nodeInf := cc.Informers.Core().V1().Nodes()
	sliceInf := cc.Informers.Discovery().V1().EndpointSlices()
	c := &Controller{
		metrics:  cc.Metrics,
		client:   cc.Client,
		services: svcInf.Lister(),
		pods:     podInf.Lister(),
		nodes:    nodeInf.Lister(),
		slices:   sliceInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpointslice"}),
		recorder:    cc.Recorder("endpoint-slice-controller"),
		log:         cc.Logger.With("controller", "endpointslice"),
		triggers:    endpointutil.NewTriggerTimeTracker(),
		tracker:     newSliceTracker(),
		batchPeriod: DefaultBatchPeriod,
		synced: []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced,
			nodeInf.Informer().HasSynced, sliceInf.Informer().HasSynced},
	}
	c.planner = &planner{maxPerSlice: DefaultMaxEndpointsPerSlice, node: c.nodes.Get}
	if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueBatched(endpointutil.ServicesForPod(c.services, obj.(*corev1.Pod))) },
		UpdateFunc: func(old, cur any) {
			c.enqueueBatched(endpointutil.ServicesForPodUpdate(c.services, old.(*corev1.Pod), cur.(*corev1.Pod)))
		},
		DeleteFunc: func(obj any) {
			if p, ok := endpointutil.PodFromDelete(obj); ok {
				c.enqueueBatched(endpointutil.ServicesForPod(c.services, p))
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.nodeChanged(obj.(*corev1.Node)) },
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Node), cur.(*corev1.Node)
			if o.Labels[corev1.LabelTopologyZone] != n.Labels[corev1.LabelTopologyZone] {
				c.nodeChanged(n)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := sliceInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if s := obj.(*discoveryv1.EndpointSlice); managed(s) && c.tracker.shouldSync(s) {
				c.enqueueSliceService(s)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, n := old.(*discoveryv1.EndpointSlice), cur.(*discoveryv1.EndpointSlice)
			if managed(o) && (!managed(n) || o.Labels[discoveryv1.LabelServiceName] != n.Labels[discoveryv1.LabelServiceName]) {
				c.enqueueSliceService(o) // taken over or moved: its Service lost a slice
			}
			if managed(n) && c.tracker.shouldSync(n) {
				c.enqueueSliceService(n)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			s, ok := obj.(*discoveryv1.EndpointSlice)
			if ok && managed(s) && !c.tracker.handleDeletion(s) {
				c.enqueueSliceService(s)
			}
		},
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func managed(s *discoveryv1.EndpointSlice) bool {
	return s.Labels[discoveryv1.LabelManagedBy] == ControllerName
}

func (c *Controller) enqueue(obj any) {
	if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(k)
	}
}

func (c *Controller) enqueueBatched(keys sets.Set[string]) {
	for k := range keys {
		c.queue.AddAfter(k, c.batchPeriod)
	}
}

func (c *Controller) enqueueSliceService(s *discoveryv1.EndpointSlice) {
	if k, ok := serviceKeyOf(s); ok {
		c.queue.AddAfter(k, c.batchPeriod)
	}
}

// nodeChanged queues the Services of the pods on a node whose zone an
// endpoint may carry (or that was missing).
func (c *Controller) nodeChanged(n *corev1.Node) {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return
	}
	keys := sets.New[string]()
	for _, p := range pods {
		if p.Spec.NodeName == n.Name {
			keys = keys.Union(endpointutil.ServicesForPod(c.services, p))
		}
	}
	c.enqueueBatched(keys)
}

// Run processes Services until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	// Leftovers of deleted Services are checked once the caches are full.
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return
	}
	c.checkLeftovers()
	controller.RunWorkers(ctx, c.queue, workers, c.synced, c.next)
}

// checkLeftovers queues the Service of every managed slice once at
// start-up, so slices of Services deleted while no controller ran go.
func (c *Controller) checkLeftovers() {
	all, err := c.slices.List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelManagedBy: ControllerName}))
	if err != nil {
		return
	}
	for _, s := range all {
		if k, ok := serviceKeyOf(s); ok {
			c.queue.Add(k)
		}
	}
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, "endpointslice", c.metrics, c.log, controller.NoResult(c.sync))
}

func sliceSelector(svc string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: ControllerName})
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.triggers.Delete(key)
		err := c.deleteAll(ctx, ns, name)
		c.tracker.forget(key)
		return err
	}
	if err != nil {
		return err
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		// No slices from this controller; drop any it made while the
		// Service had a selector. Slices others manage stay.
		return c.deleteAll(ctx, ns, name)
	}
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	existing, err := c.slices.EndpointSlices(ns).List(sliceSelector(name))
	if err != nil {
		return err
	}
	if c.tracker.stale(key, existing) {
		return errStaleCache
	}
	trigger := c.triggers.Compute(svc, pods)
	p, planErr := c.planner.compute(svc, pods, existing)
	if err := c.apply(ctx, svc, p, trigger); err != nil {
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpointSlices",
				"Error updating Endpoint Slices for Service %s: %v", key, err)
		}
		return err
	}
	return planErr
}

// apply performs a plan: creates (not for a Service being deleted, which
// would race the garbage collector), updates, then deletes.
func (c *Controller) apply(ctx context.Context, svc *corev1.Service, p plan, trigger time.Time) error {
	client := c.client.DiscoveryV1().EndpointSlices(svc.Namespace)
	if svc.DeletionTimestamp == nil {
		for _, s := range p.create {
			setTriggerTime(s, trigger)
			out, err := client.Create(ctx, s, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create endpointslice for service %s/%s: %w", svc.Namespace, svc.Name, err)
			}
			c.tracker.written(out)
		}
	}
	for _, s := range p.update {
		setTriggerTime(s, trigger)
		out, err := client.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update endpointslice %s/%s: %w", svc.Namespace, s.Name, err)
		}
		c.tracker.written(out)
	}
	for _, s := range p.delete {
		err := client.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpointslice %s/%s: %w", svc.Namespace, s.Name, err)
		}
		c.tracker.deleted(s)
	}
	return nil
}

// deleteAll deletes the slices this controller made for a Service.
func (c *Controller) deleteAll(ctx context.Context, ns, name string) error {
	existing, err := c.slices.EndpointSlices(ns).List(sliceSelector(name))
	if err != nil {
		return err
	}
	for _, s := range existing {
		err := c.client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, s.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpointslice %s/%s: %w", ns, s.Name, err)
		}
		c.tracker.deleted(s)
	}
	return nil
}

func setTriggerTime(s *discoveryv1.EndpointSlice, t time.Time) {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	if t.IsZero() {
		delete(s.Annotations, corev1.EndpointsLastChangeTriggerTime)
		return
	}
	s.Annotations[corev1.EndpointsLastChangeTriggerTime] = t.UTC().Format(time.RFC3339Nano)
}
