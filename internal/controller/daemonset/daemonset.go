package daemonset

import (
	"context"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
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

var kind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// BurstReplicas caps the creates or deletes of one sync, as upstream.
const BurstReplicas = 250

// Controller is the DaemonSet controller.
type Controller struct {
	metrics    *metrics.Metrics
	client     kubernetes.Interface
	dsLister   appslisters.DaemonSetLister
	nodeLister corelisters.NodeLister
	podIndex   cache.Indexer
	revIndex   cache.Indexer
	queue      workqueue.TypedRateLimitingInterface[string]
	exp        *controller.Expectations
	recorder   record.EventRecorder
	log        *slog.Logger
	now        func() time.Time
	synced     []cache.InformerSynced
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	dsInf := cc.Informers.Apps().V1().DaemonSets()
	podInf := cc.Informers.Core().V1().Pods()
	revInf := cc.Informers.Apps().V1().ControllerRevisions()
	nodeInf := cc.Informers.Core().V1().Nodes()
	c := &Controller{
		metrics:    cc.Metrics,
		client:     cc.Client,
		dsLister:   dsInf.Lister(),
		nodeLister: nodeInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "daemonset"}),
		exp:      controller.NewExpectations(),
		recorder: cc.Recorder("daemonset-controller"),
		log:      cc.Logger.With("controller", "daemonset"),
		now:      time.Now,
		synced: []cache.InformerSynced{dsInf.Informer().HasSynced, podInf.Informer().HasSynced,
			revInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
	}
	for _, inf := range []cache.SharedIndexInformer{podInf.Informer(), revInf.Informer()} {
		if err := replicaset.AddControllerIndex(inf); err != nil {
			return nil, err
		}
	}
	c.podIndex, c.revIndex = podInf.Informer().GetIndexer(), revInf.Informer().GetIndexer()
	if _, err := dsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
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
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.enqueueAll() },
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Node), cur.(*corev1.Node)
			if !labels.Equals(o.Labels, n.Labels) || !apiequality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) {
				c.enqueueAll()
			}
		},
		DeleteFunc: func(any) { c.enqueueAll() },
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

// enqueueAll looks at every DaemonSet again (a node changed).
func (c *Controller) enqueueAll() {
	all, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range all {
		c.queue.Add(dsKey(ds))
	}
}

func dsKey(ds *appsv1.DaemonSet) string { return ds.Namespace + "/" + ds.Name }

func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.DaemonSet {
	if ref == nil || ref.Kind != kind.Kind {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(ns).Get(ref.Name)
	if err != nil || ds.UID != ref.UID {
		return nil
	}
	return ds
}

func (c *Controller) matching(pod *corev1.Pod) []*appsv1.DaemonSet {
	all, err := c.dsLister.DaemonSets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.DaemonSet
	for _, ds := range all {
		sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, ds)
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
		if ds := c.resolve(pod.Namespace, ref); ds != nil {
			c.exp.CreationObserved(dsKey(ds))
			c.queue.Add(dsKey(ds))
		}
		return
	}
	for _, ds := range c.matching(pod) {
		c.queue.Add(dsKey(ds))
	}
}

func (c *Controller) updatePod(oldObj, curObj any) {
	old, cur := oldObj.(*corev1.Pod), curObj.(*corev1.Pod)
	if old.ResourceVersion == cur.ResourceVersion {
		return
	}
	if cur.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		if ds := c.resolve(cur.Namespace, metav1.GetControllerOfNoCopy(cur)); ds != nil {
			c.exp.DeletionObserved(dsKey(ds), cur.UID)
		}
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(cur), metav1.GetControllerOfNoCopy(old)
	if oldRef != nil && (curRef == nil || oldRef.UID != curRef.UID) {
		if ds := c.resolve(old.Namespace, oldRef); ds != nil {
			c.queue.Add(dsKey(ds))
		}
	}
	if curRef != nil {
		ds := c.resolve(cur.Namespace, curRef)
		if ds == nil {
			return
		}
		c.queue.Add(dsKey(ds))
		if !controller.IsPodReady(old) && controller.IsPodReady(cur) && ds.Spec.MinReadySeconds > 0 {
			c.queue.AddAfter(dsKey(ds), time.Duration(ds.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if !labels.Equals(old.Labels, cur.Labels) || oldRef != nil {
		for _, ds := range c.matching(cur) {
			c.queue.Add(dsKey(ds))
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
	if ds := c.resolve(pod.Namespace, metav1.GetControllerOfNoCopy(pod)); ds != nil {
		c.exp.DeletionObserved(dsKey(ds), pod.UID)
		c.queue.Add(dsKey(ds))
	}
}

// Run processes DaemonSets until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, c.synced, c.next)
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, "daemonset", c.metrics, c.log, controller.NoResult(c.sync))
}
