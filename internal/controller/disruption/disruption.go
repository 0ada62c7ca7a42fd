package disruption

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Name is the controller's name in the registry and in metrics.
const Name = "disruption"

// DeletionTimeout is how long an evicted pod stays in disruptedPods (and
// out of currentHealthy) waiting for its deletion to show, as upstream.
const DeletionTimeout = 2 * time.Minute

// Controller is the disruption controller.
type Controller struct {
	client   kubernetes.Interface
	pdbs     policylisters.PodDisruptionBudgetLister
	pods     corelisters.PodLister
	scales   scaleFinder
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
	metrics  *metrics.Metrics
	now      func() time.Time
	synced   []cache.InformerSynced
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	pdbInf := cc.Informers.Policy().V1().PodDisruptionBudgets()
	podInf := cc.Informers.Core().V1().Pods()
	apps := cc.Informers.Apps().V1()
	rcInf := cc.Informers.Core().V1().ReplicationControllers()
	c := &Controller{
		client: cc.Client,
		pdbs:   pdbInf.Lister(),
		pods:   podInf.Lister(),
		scales: scaleFinder{rss: apps.ReplicaSets().Lister(), deployments: apps.Deployments().Lister(),
			statefulSets: apps.StatefulSets().Lister(), rcs: rcInf.Lister()},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "disruption"}),
		recorder: cc.Recorder("controllermanager"),
		log:      cc.Logger.With("controller", Name),
		metrics:  cc.Metrics,
		now:      time.Now,
		synced: []cache.InformerSynced{pdbInf.Informer().HasSynced, podInf.Informer().HasSynced,
			apps.ReplicaSets().Informer().HasSynced, apps.Deployments().Informer().HasSynced,
			apps.StatefulSets().Informer().HasSynced, rcInf.Informer().HasSynced},
	}
	if _, err := pdbInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueuePod,
		UpdateFunc: func(old, cur any) {
			c.enqueuePod(cur)
			if !labels.Equals(old.(*corev1.Pod).Labels, cur.(*corev1.Pod).Labels) {
				c.enqueuePod(old)
			}
		},
		DeleteFunc: c.enqueuePod,
	}); err != nil {
		return nil, err
	}
	// A scaled controller changes the denominator of percentages before
	// its pods change.
	onScale := func(replicas func(any) *int32) cache.ResourceEventHandler {
		return cache.ResourceEventHandlerFuncs{UpdateFunc: func(old, cur any) {
			if o, n := replicas(old), replicas(cur); (o == nil) != (n == nil) || (o != nil && *o != *n) {
				c.enqueueNamespace(cur.(metav1.Object).GetNamespace())
			}
		}}
	}
	for _, h := range []struct {
		inf      cache.SharedIndexInformer
		replicas func(any) *int32
	}{
		{apps.Deployments().Informer(), func(o any) *int32 { return o.(*appsv1.Deployment).Spec.Replicas }},
		{apps.ReplicaSets().Informer(), func(o any) *int32 { return o.(*appsv1.ReplicaSet).Spec.Replicas }},
		{apps.StatefulSets().Informer(), func(o any) *int32 { return o.(*appsv1.StatefulSet).Spec.Replicas }},
		{rcInf.Informer(), func(o any) *int32 { return o.(*corev1.ReplicationController).Spec.Replicas }},
	} {
		if _, err := h.inf.AddEventHandler(onScale(h.replicas)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(k)
	}
}

// enqueuePod queues the budgets that select the pod.
func (c *Controller) enqueuePod(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || len(pod.Labels) == 0 {
		return
	}
	pdbs, err := c.pdbs.GetPodPodDisruptionBudgets(pod)
	if err != nil {
		return // none
	}
	for _, p := range pdbs {
		c.queue.Add(p.Namespace + "/" + p.Name)
	}
}

func (c *Controller) enqueueNamespace(ns string) {
	pdbs, err := c.pdbs.PodDisruptionBudgets(ns).List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range pdbs {
		c.queue.Add(p.Namespace + "/" + p.Name)
	}
}

// Run processes budgets until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, c.synced, c.next)
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, Name, c.metrics, c.log, controller.NoResult(c.sync))
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pdb, err := c.pdbs.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.trySync(ctx, pdb); err != nil {
		if apierrors.IsConflict(err) {
			return err // a newer version is coming through the informer
		}
		if fsErr := c.failSafe(ctx, pdb, err); fsErr != nil {
			return fmt.Errorf("%w (and fail-safe: %v)", err, fsErr)
		}
		return err
	}
	return nil
}

func (c *Controller) trySync(ctx context.Context, pdb *policyv1.PodDisruptionBudget) error {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return err
	}
	pods, err := c.pods.Pods(pdb.Namespace).List(sel)
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		c.recorder.Eventf(pdb, corev1.EventTypeNormal, "NoPods", "No matching pods found")
	}
	now := c.now()
	st, unmanaged, recheck, err := computeStatus(pdb, pods, c.scales.scale, now)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "CalculateExpectedPodCountFailed", "Failed to calculate the number of expected pods: %v", err)
		return err
	}
	if len(unmanaged) > 0 {
		c.log.Debug("pods without a controller under a budget", "pdb", pdb.Namespace+"/"+pdb.Name, "pods", unmanaged)
	}
	if recheck > 0 {
		c.queue.AddAfter(pdb.Namespace+"/"+pdb.Name, recheck)
	}
	return c.writeStatus(ctx, pdb, st)
}

// failSafe allows no disruptions while the status cannot be computed.
func (c *Controller) failSafe(ctx context.Context, pdb *policyv1.PodDisruptionBudget, cause error) error {
	st := *pdb.Status.DeepCopy()
	st.DisruptionsAllowed = 0
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse, Reason: policyv1.SyncFailedReason,
		Message: cause.Error(), ObservedGeneration: st.ObservedGeneration,
	})
	return c.writeStatus(ctx, pdb, st)
}

func (c *Controller) writeStatus(ctx context.Context, pdb *policyv1.PodDisruptionBudget, st policyv1.PodDisruptionBudgetStatus) error {
	if apiequality.Semantic.DeepEqual(pdb.Status, st) {
		return nil
	}
	next := pdb.DeepCopy()
	next.Status = st
	_, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

var _ controller.Controller = &Controller{}
