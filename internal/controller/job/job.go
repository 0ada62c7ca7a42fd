package job

import (
	"context"
	"log/slog"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
)

// MaxPodCreateDeletePerSync caps the pod creates or deletes of one sync.
const MaxPodCreateDeletePerSync = 500

// ManagedBy is the spec.managedBy value (or absence) this controller serves.
const ManagedBy = "kubernetes.io/job-controller"

var kind = batchv1.SchemeGroupVersion.WithKind("Job")

// Controller is the Job controller.
type Controller struct {
	metrics  *metrics.Metrics
	client   kubernetes.Interface
	jobs     batchlisters.JobLister
	pods     corelisters.PodLister
	podIndex cache.Indexer
	// queue holds Job keys; orphans holds keys of pods that carry the
	// tracking finalizer but whose Job is gone or finished.
	queue    workqueue.TypedRateLimitingInterface[string]
	orphans  workqueue.TypedRateLimitingInterface[string]
	exp      *controller.Expectations
	fin      *finalizerExpectations
	backoff  *backoffStore
	recorder record.EventRecorder
	log      *slog.Logger
	now      func() time.Time
	synced   []cache.InformerSynced
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	jobInf := cc.Informers.Batch().V1().Jobs()
	podInf := cc.Informers.Core().V1().Pods()
	c := &Controller{
		metrics: cc.Metrics,
		client:  cc.Client,
		jobs:    jobInf.Lister(),
		pods:    podInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "job"}),
		orphans: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "job_orphan_pod"}),
		exp:      controller.NewExpectations(),
		fin:      newFinalizerExpectations(),
		backoff:  newBackoffStore(),
		recorder: cc.Recorder("job-controller"),
		log:      cc.Logger.With("controller", "job"),
		now:      time.Now,
		synced:   []cache.InformerSynced{jobInf.Informer().HasSynced, podInf.Informer().HasSynced},
	}
	if err := replicaset.AddControllerIndex(podInf.Informer()); err != nil {
		return nil, err
	}
	c.podIndex = podInf.Informer().GetIndexer()
	if _, err := jobInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.deleteJob,
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	if k, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(k)
	}
}

func (c *Controller) deleteJob(obj any) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		d, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if j, ok = d.Obj.(*batchv1.Job); !ok {
			return
		}
	}
	key := jobKey(j)
	c.exp.Delete(key)
	c.queue.Add(key)
	// Its pods no longer have anyone to count them: release them.
	pods, _ := replicaset.OwnedOrOrphans[*corev1.Pod](c.podIndex, j.Namespace, j.UID)
	for _, p := range pods {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.UID == j.UID && hasTrackingFinalizer(p) {
			c.enqueueOrphan(p)
		}
	}
}

func jobKey(j *batchv1.Job) string { return j.Namespace + "/" + j.Name }

func (c *Controller) enqueueOrphan(p *corev1.Pod) {
	c.orphans.Add(p.Namespace + "/" + p.Name)
}

// resolve returns the Job a controller reference names, if it exists.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *batchv1.Job {
	if ref.Kind != kind.Kind || ref.APIVersion != kind.GroupVersion().String() {
		return nil
	}
	j, err := c.jobs.Jobs(ns).Get(ref.Name)
	if err != nil || j.UID != ref.UID {
		return nil
	}
	return j
}

// matching returns the Jobs whose selector matches an orphan pod.
func (c *Controller) matching(pod *corev1.Pod) []*batchv1.Job {
	if len(pod.Labels) == 0 {
		return nil
	}
	all, err := c.jobs.Jobs(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*batchv1.Job
	for _, j := range all {
		sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, j)
	}
	return out
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		// Seen first while terminating (e.g. on a restart): the delete
		// expectation, if any, is met.
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		j := c.resolve(pod.Namespace, ref)
		if j == nil {
			if hasTrackingFinalizer(pod) {
				c.enqueueOrphan(pod)
			}
			return
		}
		c.exp.CreationObserved(jobKey(j))
		c.queue.Add(jobKey(j))
		return
	}
	if hasTrackingFinalizer(pod) {
		c.enqueueOrphan(pod)
	}
	for _, j := range c.matching(pod) {
		c.queue.Add(jobKey(j))
	}
}

func (c *Controller) updatePod(oldObj, curObj any) {
	old, cur := oldObj.(*corev1.Pod), curObj.(*corev1.Pod)
	if old.ResourceVersion == cur.ResourceVersion {
		return
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(cur), metav1.GetControllerOfNoCopy(old)
	if oldRef != nil && (curRef == nil || oldRef.UID != curRef.UID) {
		if j := c.resolve(old.Namespace, oldRef); j != nil {
			c.fin.observed(jobKey(j), old.UID)
			c.queue.Add(jobKey(j))
		}
	}
	if curRef == nil {
		if hasTrackingFinalizer(cur) {
			c.enqueueOrphan(cur)
		}
		if !labels.Equals(old.Labels, cur.Labels) || oldRef != nil {
			for _, j := range c.matching(cur) {
				c.queue.Add(jobKey(j))
			}
		}
		return
	}
	j := c.resolve(cur.Namespace, curRef)
	if j == nil {
		if hasTrackingFinalizer(cur) {
			c.enqueueOrphan(cur)
		}
		return
	}
	key := jobKey(j)
	if !hasTrackingFinalizer(cur) {
		c.fin.observed(key, cur.UID)
	}
	if cur.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		c.exp.DeletionObserved(key, cur.UID)
	}
	c.queue.Add(key)
}

func (c *Controller) deletePod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		d, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = d.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return
	}
	if j := c.resolve(pod.Namespace, ref); j != nil {
		key := jobKey(j)
		c.exp.DeletionObserved(key, pod.UID)
		c.fin.observed(key, pod.UID)
		c.queue.Add(key)
	}
}

// Run processes Jobs until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	defer c.orphans.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for controller.ProcessNext(ctx, c.queue, "job", c.metrics, c.log, controller.NoResult(c.sync)) {
				}
			}, time.Second)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			for controller.ProcessNext(ctx, c.orphans, "job-orphans", c.metrics, c.log, controller.NoResult(c.syncOrphanPod)) {
			}
		}, time.Second)
	}()
	<-ctx.Done()
	c.queue.ShutDown()
	c.orphans.ShutDown()
	wg.Wait()
}

// syncOrphanPod drops the tracking finalizer from a pod no unfinished Job
// controls any more.
func (c *Controller) syncOrphanPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !hasTrackingFinalizer(pod) {
		return nil
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		if j := c.resolve(ns, ref); j != nil && !isFinished(j) {
			return nil // its Job counts it
		}
	} else if len(c.matching(pod)) > 0 {
		return nil // may still be adopted
	}
	return c.removeFinalizer(ctx, pod)
}

func (c *Controller) removeFinalizer(ctx context.Context, p *corev1.Pod) error {
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, removeFinalizerPatch(p), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
