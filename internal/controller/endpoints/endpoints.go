package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/endpointutil"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Annotation values and names the controller writes.
const (
	overCapacityTruncated = "truncated"
	// leaderElectionAnnotation marks old-style leader-election records kept
	// in Endpoints objects; they have no Service and must survive.
	leaderElectionAnnotation = "control-plane.alpha.kubernetes.io/leader"
)

// DefaultBatchPeriod delays the sync a pod change triggers, so a burst of
// pod changes (a rollout, many pods turning ready) costs one write.
const DefaultBatchPeriod = 100 * time.Millisecond

// Controller is the endpoints controller.
type Controller struct {
	metrics     *metrics.Metrics
	client      kubernetes.Interface
	services    corelisters.ServiceLister
	pods        corelisters.PodLister
	endpoints   corelisters.EndpointsLister
	queue       workqueue.TypedRateLimitingInterface[string]
	recorder    record.EventRecorder
	log         *slog.Logger
	triggers    *endpointutil.TriggerTimeTracker
	stale       *staleTracker
	batchPeriod time.Duration
	synced      []cache.InformerSynced
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	svcInf := cc.Informers.Core().V1().Services()
	podInf := cc.Informers.Core().V1().Pods()
	epInf := cc.Informers.Core().V1().Endpoints()
	c := &Controller{
		metrics:   cc.Metrics,
		client:    cc.Client,
		services:  svcInf.Lister(),
		pods:      podInf.Lister(),
		endpoints: epInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpoint"}),
		recorder:    cc.Recorder("endpoint-controller"),
		log:         cc.Logger.With("controller", "endpoint"),
		triggers:    endpointutil.NewTriggerTimeTracker(),
		stale:       &staleTracker{rv: map[string]string{}},
		batchPeriod: DefaultBatchPeriod,
		synced:      []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced, epInf.Informer().HasSynced},
	}
	if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueuePodServices(endpointutil.ServicesForPod(c.services, obj.(*corev1.Pod))) },
		UpdateFunc: func(old, cur any) {
			c.enqueuePodServices(endpointutil.ServicesForPodUpdate(c.services, old.(*corev1.Pod), cur.(*corev1.Pod)))
		},
		DeleteFunc: func(obj any) {
			if p, ok := endpointutil.PodFromDelete(obj); ok {
				c.enqueuePodServices(endpointutil.ServicesForPod(c.services, p))
			}
		},
	}); err != nil {
		return nil, err
	}
	// An Endpoints object deleted behind the controller's back is
	// recreated (or, without a Service, stays gone).
	if _, err := epInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.enqueue}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(k)
	}
}

func (c *Controller) enqueuePodServices(keys sets.Set[string]) {
	for k := range keys {
		c.queue.AddAfter(k, c.batchPeriod)
	}
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

// checkLeftovers queues every Endpoints object once at start-up, so those
// whose Service was deleted while no controller ran are removed.
func (c *Controller) checkLeftovers() {
	all, err := c.endpoints.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ep := range all {
		if _, ok := ep.Annotations[leaderElectionAnnotation]; ok {
			continue
		}
		c.queue.Add(ep.Namespace + "/" + ep.Name)
	}
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, "endpoint", c.metrics, c.log, controller.NoResult(c.sync))
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.triggers.Delete(key)
		c.stale.forget(key)
		if _, err := c.endpoints.Endpoints(ns).Get(name); apierrors.IsNotFound(err) {
			return nil
		}
		err := c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpoints %s: %w", key, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return nil // user-managed endpoints, if any
	}
	if ns == metav1.NamespaceDefault && name == "kubernetes" {
		return nil // the API server maintains it
	}
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	trigger := c.triggers.Compute(svc, pods)
	subsets, truncated := truncate(desiredSubsets(svc, pods))

	cur, err := c.endpoints.Endpoints(ns).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		cur = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	case err != nil:
		return err
	case c.stale.isStale(key, cur.ResourceVersion):
		return fmt.Errorf("endpoints cache is out of date: version %s of %s already replaced", cur.ResourceVersion, key)
	}
	create := cur.ResourceVersion == ""
	want := desiredLabels(svc)
	if !create && equalSubsets(cur.Subsets, subsets) && apiequality.Semantic.DeepEqual(labelsOrEmpty(cur.Labels), want) &&
		(cur.Annotations[corev1.EndpointsOverCapacity] == overCapacityTruncated) == truncated {
		return nil
	}
	next := cur.DeepCopy()
	next.Subsets = subsets
	next.Labels = want
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	if !trigger.IsZero() {
		next.Annotations[corev1.EndpointsLastChangeTriggerTime] = trigger.UTC().Format(time.RFC3339Nano)
	} else {
		delete(next.Annotations, corev1.EndpointsLastChangeTriggerTime)
	}
	if truncated {
		next.Annotations[corev1.EndpointsOverCapacity] = overCapacityTruncated
	} else {
		delete(next.Annotations, corev1.EndpointsOverCapacity)
	}
	if create {
		_, err = c.client.CoreV1().Endpoints(ns).Create(ctx, next, metav1.CreateOptions{})
	} else {
		var out *corev1.Endpoints
		out, err = c.client.CoreV1().Endpoints(ns).Update(ctx, next, metav1.UpdateOptions{})
		if err == nil && out.ResourceVersion != cur.ResourceVersion {
			c.stale.mark(key, cur.ResourceVersion)
		}
	}
	if err != nil {
		if create && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil // creates keep failing until the namespace is gone
		}
		if create {
			c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToCreateEndpoint", "Failed to create endpoint for service %s: %v", key, err)
			return fmt.Errorf("create endpoints %s: %w", key, err)
		}
		c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToUpdateEndpoint", "Failed to update endpoint %s: %v", key, err)
		return fmt.Errorf("update endpoints %s: %w", key, err)
	}
	return nil
}

// desiredLabels are the Service's labels plus the headless marker for a
// Service without a cluster IP.
func desiredLabels(svc *corev1.Service) map[string]string {
	out := make(map[string]string, len(svc.Labels)+1)
	for k, v := range svc.Labels {
		out[k] = v
	}
	if endpointutil.IsServiceIPSet(svc) {
		delete(out, corev1.IsHeadlessService)
	} else {
		out[corev1.IsHeadlessService] = ""
	}
	return out
}

func labelsOrEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// equalSubsets compares stored subsets with computed (sorted) ones,
// ignoring order and the pods' resourceVersions in targetRefs.
func equalSubsets(stored, want []corev1.EndpointSubset) bool {
	if len(stored) != len(want) {
		return false
	}
	norm := make([]corev1.EndpointSubset, len(stored))
	for i := range stored {
		stored[i].DeepCopyInto(&norm[i])
		for _, as := range [][]corev1.EndpointAddress{norm[i].Addresses, norm[i].NotReadyAddresses} {
			for j := range as {
				if as[j].TargetRef != nil {
					as[j].TargetRef.ResourceVersion = ""
				}
			}
		}
	}
	return apiequality.Semantic.DeepEqual(SortSubsets(norm), want)
}

// staleTracker remembers, per Service, the Endpoints resourceVersion the
// last update replaced: seeing it again in the cache means the cache is
// behind, and acting on it would write stale content.
type staleTracker struct {
	mu sync.Mutex
	rv map[string]string
}

func (s *staleTracker) mark(key, rv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv[key] = rv
}

func (s *staleTracker) isStale(key, rv string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rv != "" && s.rv[key] == rv
}

func (s *staleTracker) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rv, key)
}
