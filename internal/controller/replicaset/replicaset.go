package replicaset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// BurstReplicas caps the creates or deletes of one sync, as upstream.
const BurstReplicas = 500

// controllerIndex indexes pods by their controller's UID; orphans under
// orphanKey(namespace).
const controllerIndex = "controllerUID"

func orphanKey(ns string) string { return "orphan/" + ns }

// Controller is the ReplicaSet controller.
type Controller struct {
	client   kubernetes.Interface
	src      Source
	kind     schema.GroupVersionKind
	pods     corelisters.PodLister
	podIndex cache.Indexer
	queue    workqueue.TypedRateLimitingInterface[string]
	exp      *controller.Expectations
	recorder record.EventRecorder
	log      *slog.Logger
	now      func() time.Time
	synced   []cache.InformerSynced
	metrics  *metrics.Metrics
	name     string
}

// New wires the ReplicaSet controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	return NewFor(cc, NewReplicaSets(cc), "replicaset")
}

// NewFor builds the controller over src (ReplicaSets, or objects seen as
// ReplicaSets); name names its queue, logger and event source.
func NewFor(cc *controller.Context, src Source, name string) (*Controller, error) {
	rsInf := src.Informer()
	podInf := cc.Informers.Core().V1().Pods()
	c := &Controller{
		client: cc.Client,
		src:    src,
		kind:   src.Kind(),
		pods:   podInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name}),
		exp:      controller.NewExpectations(),
		recorder: cc.Recorder(name + "-controller"),
		log:      cc.Logger.With("controller", name),
		metrics:  cc.Metrics,
		name:     name,
		now:      time.Now,
		synced:   []cache.InformerSynced{rsInf.HasSynced, podInf.Informer().HasSynced},
	}
	if err := AddControllerIndex(podInf.Informer()); err != nil {
		return nil, err
	}
	c.podIndex = podInf.Informer().GetIndexer()
	if _, err := rsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
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

// AddControllerIndex adds the controller-UID index to a pod informer
// (shared by the workload controllers; adding it twice is harmless).
func AddControllerIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[controllerIndex]; ok {
		return nil
	}
	err := inf.AddIndexers(cache.Indexers{controllerIndex: func(obj any) ([]string, error) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return nil, nil
		}
		if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
			return []string{string(ref.UID)}, nil
		}
		return []string{orphanKey(m.GetNamespace())}, nil
	}})
	if err != nil && len(inf.GetIndexer().GetIndexers()) > 0 {
		if _, ok := inf.GetIndexer().GetIndexers()[controllerIndex]; ok {
			return nil
		}
	}
	return err
}

// OwnedOrOrphans returns the objects in an index built by
// AddControllerIndex that uid controls, plus the namespace's orphans.
func OwnedOrOrphans[T any](idx cache.Indexer, ns string, uid types.UID) ([]T, error) {
	var out []T
	for _, key := range []string{string(uid), orphanKey(ns)} {
		objs, err := idx.ByIndex(controllerIndex, key)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if t, ok := o.(T); ok {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

func (c *Controller) enqueue(obj any) {
	if k, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(k)
	}
}

func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	if ref.Kind != c.kind.Kind {
		return nil
	}
	rs, err := c.src.Get(ns, ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

// matching returns the ReplicaSets whose selector matches an orphan pod.
func (c *Controller) matching(pod *corev1.Pod) []*appsv1.ReplicaSet {
	all, err := c.src.List(pod.Namespace)
	if err != nil {
		return nil
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, rs)
	}
	return out
}

func rsKey(rs *appsv1.ReplicaSet) string { return rs.Namespace + "/" + rs.Name }

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		if rs := c.resolve(pod.Namespace, ref); rs != nil {
			c.exp.CreationObserved(rsKey(rs))
			c.queue.Add(rsKey(rs))
		}
		return
	}
	for _, rs := range c.matching(pod) {
		c.queue.Add(rsKey(rs))
	}
}

func (c *Controller) updatePod(oldObj, curObj any) {
	old, cur := oldObj.(*corev1.Pod), curObj.(*corev1.Pod)
	if old.ResourceVersion == cur.ResourceVersion {
		return
	}
	labelsChanged := !labels.Equals(old.Labels, cur.Labels)
	if cur.DeletionTimestamp != nil {
		c.deletePod(cur)
		if labelsChanged {
			c.deletePod(old)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(cur), metav1.GetControllerOfNoCopy(old)
	if oldRef != nil && (curRef == nil || oldRef.UID != curRef.UID) {
		if rs := c.resolve(old.Namespace, oldRef); rs != nil {
			c.queue.Add(rsKey(rs))
		}
	}
	if curRef != nil {
		rs := c.resolve(cur.Namespace, curRef)
		if rs == nil {
			return
		}
		c.queue.Add(rsKey(rs))
		// A pod that just became ready becomes available after
		// minReadySeconds; look again then.
		if !controller.IsPodReady(old) && controller.IsPodReady(cur) && rs.Spec.MinReadySeconds > 0 {
			c.queue.AddAfter(rsKey(rs), time.Duration(rs.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if labelsChanged || oldRef != nil {
		for _, rs := range c.matching(cur) {
			c.queue.Add(rsKey(rs))
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
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return
	}
	if rs := c.resolve(pod.Namespace, ref); rs != nil {
		c.exp.DeletionObserved(rsKey(rs), pod.UID)
		c.queue.Add(rsKey(rs))
	}
}

// Run processes ReplicaSets until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, c.synced, c.next)
}

func (c *Controller) worker(ctx context.Context) {
	for c.next(ctx) {
	}
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, c.name, c.metrics, c.log, controller.NoResult(c.sync))
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	rs, err := c.src.Get(ns, name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		return nil // validation prevents this; nothing to do
	}
	needsSync := c.exp.Satisfied(key) && rs.DeletionTimestamp == nil
	candidates, err := OwnedOrOrphans[*corev1.Pod](c.podIndex, ns, rs.UID)
	if err != nil {
		return err
	}
	var active []*corev1.Pod
	for _, p := range candidates {
		if controller.IsPodActive(p) {
			active = append(active, p)
		}
	}
	claimer := &controller.Claimer{
		Owner: rs, Kind: c.kind, Selector: sel,
		Patch: func(ctx context.Context, pod string, patch []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		},
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.src.GetLive(ctx, ns, name)
			if err != nil {
				return err
			}
			if fresh.UID != rs.UID {
				return fmt.Errorf("%s %s was recreated", c.kind.Kind, key)
			}
			if fresh.DeletionTimestamp != nil {
				return fmt.Errorf("%s %s is being deleted", c.kind.Kind, key)
			}
			return nil
		},
	}
	pods, err := claimer.ClaimPods(ctx, active)
	if err != nil {
		return err
	}
	var manageErr error
	if needsSync {
		manageErr = c.manage(ctx, key, rs, pods)
	}
	status := computeStatus(rs, pods, manageErr, c.now())
	updated, err := c.updateStatus(ctx, rs, status)
	if err != nil {
		return err
	}
	if manageErr == nil && updated.Spec.MinReadySeconds > 0 && updated.Status.ReadyReplicas == *updated.Spec.Replicas &&
		updated.Status.AvailableReplicas != *updated.Spec.Replicas {
		c.queue.AddAfter(key, time.Duration(updated.Spec.MinReadySeconds)*time.Second)
	}
	return manageErr
}

// manage creates or deletes pods so that len(pods) approaches replicas.
func (c *Controller) manage(ctx context.Context, key string, rs *appsv1.ReplicaSet, pods []*corev1.Pod) error {
	want := int32(1)
	if rs.Spec.Replicas != nil {
		want = *rs.Spec.Replicas
	}
	diff := len(pods) - int(want)
	switch {
	case diff < 0:
		n := min(-diff, BurstReplicas)
		c.exp.ExpectCreations(key, n)
		ref := controller.NewControllerRef(rs, c.kind)
		ok, err := controller.SlowStartBatch(n, 1, func() error {
			pod := controller.GetPodFromTemplate(&rs.Spec.Template, rs, ref)
			out, err := controller.CreatePod(ctx, c.client, pod)
			if err != nil {
				if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return err
				}
				c.recorder.Eventf(c.src.Object(rs), corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", unwrapAPI(err))
				return err
			}
			c.recorder.Eventf(c.src.Object(rs), corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", out.Name)
			return nil
		})
		for i := ok; i < n; i++ {
			c.exp.CreationObserved(key) // never coming
		}
		return err
	case diff > 0:
		n := min(diff, BurstReplicas)
		victims := PodsToDelete(pods, n)
		uids := make([]types.UID, len(victims))
		for i, p := range victims {
			uids[i] = p.UID
		}
		c.exp.ExpectDeletions(key, uids)
		var wg sync.WaitGroup
		errs := make(chan error, len(victims))
		for _, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
				if err != nil {
					c.exp.DeletionObserved(key, p.UID)
					if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
						return
					}
					c.recorder.Eventf(c.src.Object(rs), corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
					errs <- err
					return
				}
				c.recorder.Eventf(c.src.Object(rs), corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	return nil
}

func unwrapAPI(err error) error {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return fmt.Errorf("%s", st.Status().Message)
	}
	return err
}

// PodsToDelete picks n pods to delete, in upstream's order of preference:
// unscheduled before scheduled, pending before unknown before running, not
// ready before ready, doubled-up on a node before alone, ready for less time
// before longer, more restarts before fewer, newer before older.
func PodsToDelete(pods []*corev1.Pod, n int) []*corev1.Pod {
	if n >= len(pods) {
		return pods
	}
	perNode := map[string]int{}
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			perNode[p.Spec.NodeName]++
		}
	}
	sorted := append([]*corev1.Pod(nil), pods...)
	sort.SliceStable(sorted, func(i, j int) bool { return deleteFirst(sorted[i], sorted[j], perNode) })
	return sorted[:n]
}

var phaseRank = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

func deleteFirst(a, b *corev1.Pod, perNode map[string]int) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if phaseRank[a.Status.Phase] != phaseRank[b.Status.Phase] {
		return phaseRank[a.Status.Phase] < phaseRank[b.Status.Phase]
	}
	ra, rb := controller.IsPodReady(a), controller.IsPodReady(b)
	if ra != rb {
		return !ra
	}
	if na, nb := perNode[a.Spec.NodeName], perNode[b.Spec.NodeName]; na != nb {
		return na > nb
	}
	if ra && rb {
		ta, tb := controller.PodReadyCondition(a).LastTransitionTime, controller.PodReadyCondition(b).LastTransitionTime
		if !ta.Equal(&tb) {
			return tb.Before(&ta) // ready more recently goes first
		}
	}
	if ca, cb := restarts(a), restarts(b); ca != cb {
		return ca > cb
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name > b.Name
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n = max(n, s.RestartCount)
	}
	return n
}
