package nodelifecycle

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Taint keys, as upstream.
const (
	TaintNotReady    = "node.kubernetes.io/not-ready"
	TaintUnreachable = "node.kubernetes.io/unreachable"
	podNodeIndex     = "spec.nodeName"
	monitorPeriod    = 5 * time.Second
)

// health is what the controller last saw of a node's heartbeats.
type health struct {
	heartbeat metav1.Time // Ready condition's lastHeartbeatTime
	renew     *metav1.MicroTime
	probe     time.Time // local time the last change was seen
}

// Controller is the node lifecycle controller.
type Controller struct {
	client   kubernetes.Interface
	nodes    corelisters.NodeLister
	leases   coordlisters.LeaseLister
	podIndex cache.Indexer
	queue    workqueue.TypedRateLimitingInterface[string] // node names, for eviction
	recorder record.EventRecorder
	log      *slog.Logger
	metrics  *metrics.Metrics
	grace    time.Duration
	now      func() time.Time
	synced   []cache.InformerSynced

	mu     sync.Mutex
	health map[string]*health
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	nodeInf := cc.Informers.Core().V1().Nodes()
	leaseInf := cc.Informers.Coordination().V1().Leases()
	podInf := cc.Informers.Core().V1().Pods()
	c := &Controller{
		client: cc.Client, nodes: nodeInf.Lister(), leases: leaseInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodelifecycle"}),
		recorder: cc.Recorder("node-controller"),
		log:      cc.Logger.With("controller", "nodelifecycle"),
		metrics:  cc.Metrics,
		grace:    cc.Options.NodeMonitorGracePeriod,
		now:      time.Now,
		synced:   []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced, podInf.Informer().HasSynced},
		health:   map[string]*health{},
	}
	if c.grace == 0 {
		c.grace = 40 * time.Second
	}
	if err := podInf.Informer().AddIndexers(cache.Indexers{podNodeIndex: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		if _, exists := podInf.Informer().GetIndexer().GetIndexers()[podNodeIndex]; !exists {
			return nil, err
		}
	}
	c.podIndex = podInf.Informer().GetIndexer()
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.queue.Add(obj.(*corev1.Node).Name) },
		UpdateFunc: func(_, cur any) { c.queue.Add(cur.(*corev1.Node).Name) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				c.mu.Lock()
				delete(c.health, n.Name)
				c.mu.Unlock()
			}
		},
	}); err != nil {
		return nil, err
	}
	// A pod placed on a tainted node must be checked against the taints.
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p := obj.(*corev1.Pod); p.Spec.NodeName != "" {
				c.queue.Add(p.Spec.NodeName)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
			if n.Spec.NodeName != "" && (o.Spec.NodeName != n.Spec.NodeName || len(o.Spec.Tolerations) != len(n.Spec.Tolerations)) {
				c.queue.Add(n.Spec.NodeName)
			}
		},
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run monitors nodes and evicts pods until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		wait.UntilWithContext(ctx, c.monitor, monitorPeriod)
	}()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for c.next(ctx) {
				}
			}, time.Second)
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

// observe records a node's heartbeats and returns the local time of the
// last change.
func (c *Controller) observe(n *corev1.Node, lease *coordinationv1.Lease) time.Time {
	now := c.now()
	var hb metav1.Time
	if r := readyCondition(n); r != nil {
		hb = r.LastHeartbeatTime
	}
	var renew *metav1.MicroTime
	if lease != nil {
		renew = lease.Spec.RenewTime
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.health[n.Name]
	if !ok {
		c.health[n.Name] = &health{heartbeat: hb, renew: renew, probe: now}
		return now
	}
	if !hb.Equal(&h.heartbeat) {
		h.heartbeat, h.probe = hb, now
	}
	if renew != nil && (h.renew == nil || !renew.Equal(h.renew)) {
		h.renew, h.probe = renew, now
	}
	return h.probe
}

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// monitor marks silent nodes unknown; it runs every monitorPeriod.
func (c *Controller) monitor(ctx context.Context) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	for _, n := range nodes {
		lease, _ := c.leases.Leases(corev1.NamespaceNodeLease).Get(n.Name)
		probe := c.observe(n, lease)
		if c.now().Sub(probe) <= c.grace {
			continue
		}
		if err := c.markUnknown(ctx, n); err != nil {
			c.log.Debug("mark node unknown", "node", n.Name, "err", err)
		}
	}
}

// markUnknown sets every kubelet-owned condition to Unknown.
func (c *Controller) markUnknown(ctx context.Context, n *corev1.Node) error {
	next := n.DeepCopy()
	now := metav1.NewTime(c.now())
	changed := false
	types := []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure}
	for _, t := range types {
		found := false
		for i := range next.Status.Conditions {
			cond := &next.Status.Conditions[i]
			if cond.Type != t {
				continue
			}
			found = true
			if cond.Status != corev1.ConditionUnknown {
				cond.Status = corev1.ConditionUnknown
				cond.Reason = "NodeStatusUnknown"
				cond.Message = "Kubelet stopped posting node status."
				cond.LastTransitionTime = now
				changed = true
			}
		}
		if !found {
			next.Status.Conditions = append(next.Status.Conditions, corev1.NodeCondition{Type: t, Status: corev1.ConditionUnknown,
				Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.", LastHeartbeatTime: n.CreationTimestamp, LastTransitionTime: now})
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if err == nil {
		c.recorder.Eventf(n, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", n.Name)
	}
	return err
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, "nodelifecycle", c.metrics, c.log, func(ctx context.Context, key string) (controller.Result, error) {
		retry, err := c.sync(ctx, key)
		return controller.Result{RequeueAfter: retry}, err
	})
}

// wantTaints returns the condition taints a node should carry.
func wantTaints(n *corev1.Node) []corev1.Taint {
	r := readyCondition(n)
	switch {
	case r == nil:
		return nil
	case r.Status == corev1.ConditionFalse:
		return []corev1.Taint{{Key: TaintNotReady, Effect: corev1.TaintEffectNoSchedule}, {Key: TaintNotReady, Effect: corev1.TaintEffectNoExecute}}
	case r.Status == corev1.ConditionUnknown:
		return []corev1.Taint{{Key: TaintUnreachable, Effect: corev1.TaintEffectNoSchedule}, {Key: TaintUnreachable, Effect: corev1.TaintEffectNoExecute}}
	}
	return nil
}

func isConditionTaint(t corev1.Taint) bool {
	return t.Key == TaintNotReady || t.Key == TaintUnreachable
}

// reconcileTaints makes the node's condition taints match its Ready
// condition. It returns the node as written.
func (c *Controller) reconcileTaints(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	want := wantTaints(n)
	var next []corev1.Taint
	have := map[corev1.Taint]bool{}
	for _, t := range n.Spec.Taints {
		if isConditionTaint(t) {
			key := corev1.Taint{Key: t.Key, Effect: t.Effect}
			keep := false
			for _, w := range want {
				if w == key {
					keep = true
				}
			}
			if !keep {
				continue
			}
			have[key] = true
		}
		next = append(next, t)
	}
	now := metav1.NewTime(c.now())
	for _, w := range want {
		if !have[w] {
			w.TimeAdded = &now
			next = append(next, w)
		}
	}
	if len(next) == len(n.Spec.Taints) && len(want) == len(have) {
		return n, nil
	}
	if next == nil {
		next = []corev1.Taint{}
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": n.UID, "resourceVersion": n.ResourceVersion},
		"spec":     map[string]any{"taints": next},
	})
	return c.client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{})
}

// sync keeps a node's taints in step with its health, marks its pods not
// Ready when it is unhealthy, and evicts pods that do not tolerate its
// NoExecute taints. It returns when to look again.
func (c *Controller) sync(ctx context.Context, name string) (time.Duration, error) {
	n, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err = c.reconcileTaints(ctx, n)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return 0, nil // the informer brings the new state and requeues
	}
	if err != nil {
		return 0, err
	}
	pods, err := c.podIndex.ByIndex(podNodeIndex, name)
	if err != nil {
		return 0, err
	}
	if r := readyCondition(n); r != nil && r.Status != corev1.ConditionTrue {
		for _, o := range pods {
			if err := c.markPodNotReady(ctx, o.(*corev1.Pod)); err != nil {
				c.log.Debug("mark pod not ready", "err", err)
			}
		}
	}
	var noExecute []corev1.Taint
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			noExecute = append(noExecute, t)
		}
	}
	if len(noExecute) == 0 {
		return 0, nil
	}
	var soonest time.Duration
	now := c.now()
	for _, o := range pods {
		p := o.(*corev1.Pod)
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		at, evict := evictionTime(p, noExecute)
		if !evict {
			continue
		}
		if wait := at.Sub(now); wait > 0 {
			if soonest == 0 || wait < soonest {
				soonest = wait
			}
			continue
		}
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return 0, err
		}
		if err == nil {
			c.recorder.Eventf(p, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", p.Namespace, p.Name)
		}
	}
	return soonest, nil
}

// evictionTime returns when a pod must leave a node with these NoExecute
// taints: never (false) if it tolerates all of them forever, otherwise the
// earliest taint time plus the shortest tolerationSeconds.
func evictionTime(p *corev1.Pod, taints []corev1.Taint) (time.Time, bool) {
	var at time.Time
	evict := false
	for _, t := range taints {
		added := time.Time{}
		if t.TimeAdded != nil {
			added = t.TimeAdded.Time
		}
		var best *corev1.Toleration
		for i := range p.Spec.Tolerations {
			tol := &p.Spec.Tolerations[i]
			if tol.Effect != "" && tol.Effect != corev1.TaintEffectNoExecute {
				continue
			}
			if !tol.ToleratesTaint(klog.Background(), &t, false) {
				continue
			}
			if tol.TolerationSeconds == nil {
				best = tol
				break
			}
			if best == nil || (best.TolerationSeconds != nil && *tol.TolerationSeconds < *best.TolerationSeconds) {
				best = tol
			}
		}
		var when time.Time
		switch {
		case best == nil:
			when = time.Time{} // not tolerated: now
		case best.TolerationSeconds == nil:
			continue // tolerated forever
		default:
			secs := max(*best.TolerationSeconds, 0)
			when = added.Add(time.Duration(secs) * time.Second)
		}
		if !evict || when.Before(at) {
			at = when
		}
		evict = true
	}
	return at, evict
}

// markPodNotReady sets a pod's Ready condition to False, as upstream does
// for pods on an unhealthy node.
func (c *Controller) markPodNotReady(ctx context.Context, p *corev1.Pod) error {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return nil
	}
	next := p.DeepCopy()
	changed := false
	now := metav1.NewTime(c.now())
	for i := range next.Status.Conditions {
		cond := &next.Status.Conditions[i]
		if (cond.Type == corev1.PodReady || cond.Type == corev1.ContainersReady) && cond.Status != corev1.ConditionFalse {
			cond.Status = corev1.ConditionFalse
			cond.LastTransitionTime = now
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
