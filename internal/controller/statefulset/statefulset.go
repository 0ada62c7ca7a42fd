package statefulset

import (
	"context"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
)

var kind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Controller is the StatefulSet controller.
type Controller struct {
	metrics   *metrics.Metrics
	client    kubernetes.Interface
	setLister appslisters.StatefulSetLister
	pvcLister corelisters.PersistentVolumeClaimLister
	podIndex  cache.Indexer
	revIndex  cache.Indexer
	queue     workqueue.TypedRateLimitingInterface[string]
	exp       *controller.Expectations
	recorder  record.EventRecorder
	log       *slog.Logger
	now       func() time.Time
	synced    []cache.InformerSynced
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	setInf := cc.Informers.Apps().V1().StatefulSets()
	podInf := cc.Informers.Core().V1().Pods()
	revInf := cc.Informers.Apps().V1().ControllerRevisions()
	pvcInf := cc.Informers.Core().V1().PersistentVolumeClaims()
	c := &Controller{
		metrics:   cc.Metrics,
		client:    cc.Client,
		setLister: setInf.Lister(),
		pvcLister: pvcInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "statefulset"}),
		exp:      controller.NewExpectations(),
		recorder: cc.Recorder("statefulset-controller"),
		log:      cc.Logger.With("controller", "statefulset"),
		now:      time.Now,
		synced: []cache.InformerSynced{setInf.Informer().HasSynced, podInf.Informer().HasSynced,
			revInf.Informer().HasSynced, pvcInf.Informer().HasSynced},
	}
	for _, inf := range []cache.SharedIndexInformer{podInf.Informer(), revInf.Informer()} {
		if err := replicaset.AddControllerIndex(inf); err != nil {
			return nil, err
		}
	}
	c.podIndex, c.revIndex = podInf.Informer().GetIndexer(), revInf.Informer().GetIndexer()
	if _, err := setInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: func(obj any) {
			if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.exp.Delete(k)
				c.queue.Add(k)
			}
		},
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

func setKey(s *appsv1.StatefulSet) string { return s.Namespace + "/" + s.Name }

func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.StatefulSet {
	if ref == nil || ref.Kind != kind.Kind {
		return nil
	}
	s, err := c.setLister.StatefulSets(ns).Get(ref.Name)
	if err != nil || s.UID != ref.UID {
		return nil
	}
	return s
}

// matching returns the sets whose selector matches an orphan pod.
func (c *Controller) matching(pod *corev1.Pod) []*appsv1.StatefulSet {
	all, err := c.setLister.StatefulSets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.StatefulSet
	for _, s := range all {
		sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, s)
		}
	}
	return out
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		if s := c.resolve(pod.Namespace, ref); s != nil {
			c.exp.CreationObserved(setKey(s))
			c.queue.Add(setKey(s))
		}
		return
	}
	for _, s := range c.matching(pod) {
		c.queue.Add(setKey(s))
	}
}

func (c *Controller) updatePod(oldObj, curObj any) {
	old, cur := oldObj.(*corev1.Pod), curObj.(*corev1.Pod)
	if old.ResourceVersion == cur.ResourceVersion {
		return
	}
	if cur.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		// Deletion started: the set waits on it but expectations do not.
		if s := c.resolve(cur.Namespace, metav1.GetControllerOfNoCopy(cur)); s != nil {
			c.exp.DeletionObserved(setKey(s), cur.UID)
		}
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(cur), metav1.GetControllerOfNoCopy(old)
	if oldRef != nil && (curRef == nil || oldRef.UID != curRef.UID) {
		if s := c.resolve(old.Namespace, oldRef); s != nil {
			c.queue.Add(setKey(s))
		}
	}
	if curRef != nil {
		s := c.resolve(cur.Namespace, curRef)
		if s == nil {
			return
		}
		c.queue.Add(setKey(s))
		if !controller.IsPodReady(old) && controller.IsPodReady(cur) && s.Spec.MinReadySeconds > 0 {
			c.queue.AddAfter(setKey(s), time.Duration(s.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if !labels.Equals(old.Labels, cur.Labels) || oldRef != nil {
		for _, s := range c.matching(cur) {
			c.queue.Add(setKey(s))
		}
	}
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
	if s := c.resolve(pod.Namespace, metav1.GetControllerOfNoCopy(pod)); s != nil {
		c.exp.DeletionObserved(setKey(s), pod.UID)
		c.queue.Add(setKey(s))
	}
}

// Run processes StatefulSets until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, c.synced, c.next)
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, "statefulset", c.metrics, c.log, controller.NoResult(c.sync))
}
