package podgc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Name is the controller's name in the registry and in metrics.
const Name = "podgc"

const (
	// CheckPeriod is how often the collector runs, as upstream.
	CheckPeriod = 20 * time.Second
	// QuarantineTime is how long a Node must be missing from the informer
	// before a live GET decides it is gone, as upstream.
	QuarantineTime = 40 * time.Second
	// reasonDeletionByPodGC is the DisruptionTarget reason on orphans.
	reasonDeletionByPodGC = "DeletionByPodGC"
)

// Controller is the pod garbage collector.
type Controller struct {
	client     kubernetes.Interface
	pods       corelisters.PodLister
	nodes      corelisters.NodeLister
	nodeQueue  workqueue.TypedDelayingInterface[string] // node names in quarantine
	threshold  int
	period     time.Duration
	quarantine time.Duration
	log        *slog.Logger
	metrics    *metrics.Metrics
	synced     []cache.InformerSynced
}

// New wires the collector to the shared pod and node informers.
func New(cc *controller.Context) (*Controller, error) {
	podInf := cc.Informers.Core().V1().Pods()
	nodeInf := cc.Informers.Core().V1().Nodes()
	return &Controller{
		client:     cc.Client,
		pods:       podInf.Lister(),
		nodes:      nodeInf.Lister(),
		nodeQueue:  workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: "orphaned_pods_nodes"}),
		threshold:  cc.Options.TerminatedPodGCThreshold,
		period:     CheckPeriod,
		quarantine: QuarantineTime,
		log:        cc.Logger.With("controller", Name),
		metrics:    cc.Metrics,
		synced:     []cache.InformerSynced{podInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
	}, nil
}

// Run collects every CheckPeriod until ctx ends. The collector is one loop;
// workers is ignored.
func (c *Controller) Run(ctx context.Context, _ int) {
	defer utilruntime.HandleCrash()
	defer c.nodeQueue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := c.metrics.Timed(Name, func() error { return c.gc(ctx) }); err != nil {
			c.log.Debug("pod GC pass had errors", "err", err)
		}
	}, c.period)
}

// gc runs one pass of every collection.
func (c *Controller) gc(ctx context.Context) error {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	if c.threshold > 0 {
		errs = append(errs, c.deleteAll(ctx, terminatedBeyond(pods, c.threshold), nil))
	}
	errs = append(errs, c.deleteAll(ctx, terminatingOutOfService(pods, c.nodes), nil))
	errs = append(errs, c.gcOrphaned(ctx, pods, nodes))
	errs = append(errs, c.deleteAll(ctx, unscheduledTerminating(pods), nil))
	return errors.Join(errs...)
}

// isTerminated: the pod's phase is final.
func isTerminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// terminatedBeyond returns the terminated pods beyond threshold, those to
// delete first first: evicted pods, then the oldest.
func terminatedBeyond(pods []*corev1.Pod, threshold int) []*corev1.Pod {
	var done []*corev1.Pod
	for _, p := range pods {
		if isTerminated(p) {
			done = append(done, p)
		}
	}
	n := len(done) - threshold
	if n <= 0 {
		return nil
	}
	sort.Slice(done, func(i, j int) bool { return deleteFirst(done[i], done[j]) })
	return done[:n]
}

// deleteFirst orders by eviction (the kubelet's reason "Evicted") and then
// creation time, names breaking ties, as upstream: evicted pods go first so
// the finished pods of workloads stay longer.
func deleteFirst(a, b *corev1.Pod) bool {
	ea, eb := isEvicted(a), isEvicted(b)
	if ea != eb {
		return ea
	}
	if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.Name < b.Name
	}
	return a.CreationTimestamp.Before(&b.CreationTimestamp)
}

func isEvicted(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed && p.Status.Reason == "Evicted"
}

// unscheduledTerminating returns terminating pods no node was chosen for.
func unscheduledTerminating(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil && p.Spec.NodeName == "" {
			out = append(out, p)
		}
	}
	return out
}

// terminatingOutOfService returns terminating pods on NotReady nodes that
// carry the out-of-service taint: their kubelet will not finish them.
func terminatingOutOfService(pods []*corev1.Pod, nodes corelisters.NodeLister) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil || p.Spec.NodeName == "" {
			continue
		}
		n, err := nodes.Get(p.Spec.NodeName)
		if err != nil || nodeReady(n) || !hasTaint(n, corev1.TaintNodeOutOfService) {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return deleteFirst(out[i], out[j]) })
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func hasTaint(n *corev1.Node, key string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}

// gcOrphaned quarantines the names of missing nodes that pods are bound to
// and deletes the pods of those still missing after the quarantine.
func (c *Controller) gcOrphaned(ctx context.Context, pods []*corev1.Pod, nodes []*corev1.Node) error {
	existing := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		existing[n.Name] = true
	}
	for _, p := range pods {
		if p.Spec.NodeName != "" && !existing[p.Spec.NodeName] {
			// Adding a name already waiting keeps the earlier deadline.
			c.nodeQueue.AddAfter(p.Spec.NodeName, c.quarantine)
		}
	}
	deleted, err := c.discoverDeletedNodes(ctx, existing)
	if len(deleted) == 0 {
		return err
	}
	var orphans []*corev1.Pod
	for _, p := range pods {
		if deleted[p.Spec.NodeName] {
			orphans = append(orphans, p)
		}
	}
	cond := &corev1.PodCondition{
		Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: reasonDeletionByPodGC, Message: "PodGC: node no longer exists",
	}
	return errors.Join(err, c.deleteAll(ctx, orphans, cond))
}

// discoverDeletedNodes drains the names whose quarantine is over and
// returns those a live GET does not find either.
func (c *Controller) discoverDeletedNodes(ctx context.Context, existing map[string]bool) (map[string]bool, error) {
	deleted := map[string]bool{}
	var errs []error
	for c.nodeQueue.Len() > 0 {
		name, quit := c.nodeQueue.Get()
		if quit {
			break
		}
		if !existing[name] {
			_, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				deleted[name] = true
			case err != nil:
				// Still referenced pods put it back on the next pass.
				errs = append(errs, fmt.Errorf("get node %s: %w", name, err))
			}
		}
		c.nodeQueue.Done(name)
	}
	return deleted, errors.Join(errs...)
}

// deleteAll marks each pod Failed (with cond, if any) and force-deletes
// it, in parallel.
func (c *Controller) deleteAll(ctx context.Context, pods []*corev1.Pod, cond *corev1.PodCondition) error {
	if len(pods) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.markFailedAndDelete(ctx, p, cond)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// markFailedAndDelete moves a pod that is not finished to phase Failed
// (an orphan would otherwise stay Running forever: no kubelet reports on
// it) and deletes it with grace period 0.
func (c *Controller) markFailedAndDelete(ctx context.Context, p *corev1.Pod, cond *corev1.PodCondition) error {
	c.log.Info("force deleting pod", "pod", p.Namespace+"/"+p.Name, "node", p.Spec.NodeName)
	if !isTerminated(p) {
		patch, err := failedStatusPatch(p, cond, time.Now())
		if err != nil {
			return err
		}
		_, err = c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mark pod %s/%s failed: %w", p.Namespace, p.Name, err)
		}
	}
	zero := int64(0)
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero,
		Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or replaced by a pod of the same name
	}
	if err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// failedStatusPatch is a strategic merge patch of the status subresource
// setting phase Failed and, merged by type, cond. The UID guards against a
// pod recreated under the same name.
func failedStatusPatch(p *corev1.Pod, cond *corev1.PodCondition, now time.Time) ([]byte, error) {
	status := map[string]any{"phase": corev1.PodFailed}
	if cond != nil {
		c := *cond
		c.LastTransitionTime = metav1.NewTime(now)
		for _, old := range p.Status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		status["conditions"] = []corev1.PodCondition{c}
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": p.UID},
		"status":   status,
	})
}

var _ controller.Controller = &Controller{}
