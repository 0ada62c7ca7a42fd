package namespace

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Controller is the namespace controller.
type Controller struct {
	client  kubernetes.Interface
	meta    metadata.Interface
	disc    discovery.DiscoveryInterface
	lister  corelisters.NamespaceLister
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
	metrics *metrics.Metrics
	synced  cache.InformerSynced
	now     func() time.Time
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	inf := cc.Informers.Core().V1().Namespaces()
	c := &Controller{
		client: cc.Client, meta: cc.Metadata, disc: cc.Discovery, lister: inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"}),
		log:     cc.Logger.With("controller", "namespace"),
		metrics: cc.Metrics,
		synced:  inf.Informer().HasSynced,
		now:     time.Now,
	}
	enqueue := func(obj any) {
		ns, ok := obj.(*corev1.Namespace)
		if ok && ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur any) { enqueue(cur) },
	})
	return c, err
}

// Run processes namespaces until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, []cache.InformerSynced{c.synced}, c.next)
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, "namespace", c.metrics, c.log, func(ctx context.Context, key string) (controller.Result, error) {
		// While content is going away (pods finish their grace period),
		// look again soon, backing off while it takes long.
		remaining, err := c.sync(ctx, key)
		return controller.Result{Requeue: remaining}, err
	})
}

// sync deletes a terminating namespace's content; remaining reports that
// content is still present.
func (c *Controller) sync(ctx context.Context, name string) (remaining bool, err error) {
	ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if ns.DeletionTimestamp == nil || !hasKubernetesFinalizer(ns) {
		return false, nil
	}
	resources, discErr := c.namespacedResources()
	counts := map[string]int{}
	finalizers := map[string]int{}
	var errs []string
	for _, r := range resources {
		n, fin, err := c.deleteAll(ctx, r, name)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", r.gvr.GroupResource(), err))
			continue
		}
		if n > 0 {
			counts[r.gvr.GroupResource().String()] = n
		}
		for f, k := range fin {
			finalizers[f] += k
		}
	}
	conds := c.conditions(discErr, errs, counts, finalizers)
	if err := c.setConditions(ctx, ns, conds); err != nil {
		return false, err
	}
	if discErr != nil {
		return false, discErr
	}
	if len(errs) > 0 {
		return false, fmt.Errorf("delete content: %s", strings.Join(errs, "; "))
	}
	if len(counts) > 0 {
		return true, nil
	}
	return false, c.finalize(ctx, ns)
}

func hasKubernetesFinalizer(ns *corev1.Namespace) bool {
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			return true
		}
	}
	return false
}

type resource struct {
	gvr              schema.GroupVersionResource
	deleteCollection bool
}

// namespacedResources lists the namespaced resources that can be listed
// and deleted.
func (c *Controller) namespacedResources() ([]resource, error) {
	lists, err := c.disc.ServerPreferredNamespacedResources()
	var out []resource
	for _, l := range discovery.FilteredBy(discovery.SupportsAllVerbs{Verbs: []string{"list", "delete"}}, lists) {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			dc := false
			for _, v := range r.Verbs {
				if v == "deletecollection" {
					dc = true
				}
			}
			out = append(out, resource{gvr: gv.WithResource(r.Name), deleteCollection: dc})
		}
	}
	if err != nil && len(out) == 0 {
		return nil, err
	}
	return out, nil
}

// deleteAll deletes every object of one resource in the namespace and
// reports how many remain and which finalizers hold them.
func (c *Controller) deleteAll(ctx context.Context, r resource, ns string) (int, map[string]int, error) {
	rc := c.meta.Resource(r.gvr).Namespace(ns)
	policy := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &policy}
	if r.deleteCollection {
		err := rc.DeleteCollection(ctx, opts, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			return 0, nil, err
		}
	}
	list, err := rc.List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	fin := map[string]int{}
	for i := range list.Items {
		m := &list.Items[i]
		for _, f := range m.Finalizers {
			fin[f]++
		}
		if m.DeletionTimestamp != nil || r.deleteCollection {
			continue
		}
		if err := rc.Delete(ctx, m.Name, opts); err != nil && !apierrors.IsNotFound(err) {
			return 0, nil, err
		}
	}
	return len(list.Items), fin, nil
}

// Namespace condition types, as upstream.
const (
	condDiscoveryFailure   corev1.NamespaceConditionType = "NamespaceDeletionDiscoveryFailure"
	condContentFailure     corev1.NamespaceConditionType = "NamespaceDeletionContentFailure"
	condContentRemaining   corev1.NamespaceConditionType = "NamespaceContentRemaining"
	condFinalizersRemained corev1.NamespaceConditionType = "NamespaceFinalizersRemaining"
	condGVParsingFailure   corev1.NamespaceConditionType = "NamespaceDeletionGroupVersionParsingFailure"
)

func (c *Controller) conditions(discErr error, errs []string, counts, finalizers map[string]int) []corev1.NamespaceCondition {
	cond := func(t corev1.NamespaceConditionType, bad bool, badReason, goodReason, msg string) corev1.NamespaceCondition {
		if bad {
			return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: badReason, Message: msg}
		}
		return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: goodReason, Message: msg}
	}
	discMsg := "All resources successfully discovered"
	if discErr != nil {
		discMsg = "Discovery failed for some groups: " + discErr.Error()
	}
	contentMsg := "All content successfully deleted, may be waiting on finalization"
	if len(errs) > 0 {
		contentMsg = "Failed to delete all resource types: " + strings.Join(errs, ", ")
	}
	remainingMsg := "All content successfully removed"
	if len(counts) > 0 {
		var parts []string
		for _, k := range sortedKeys(counts) {
			parts = append(parts, fmt.Sprintf("%s has %d resource instances", k, counts[k]))
		}
		remainingMsg = "Some resources are remaining: " + strings.Join(parts, ", ")
	}
	finMsg := "All content-preserving finalizers finished"
	if len(finalizers) > 0 {
		var parts []string
		for _, k := range sortedKeys(finalizers) {
			parts = append(parts, fmt.Sprintf("%s in %d resource instances", k, finalizers[k]))
		}
		finMsg = "Some content in the namespace has finalizers remaining: " + strings.Join(parts, ", ")
	}
	return []corev1.NamespaceCondition{
		cond(condDiscoveryFailure, discErr != nil, "DiscoveryFailed", "ResourcesDiscovered", discMsg),
		cond(condGVParsingFailure, false, "GroupVersionParsingFailed", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
		cond(condContentFailure, len(errs) > 0, "ContentDeletionFailed", "ContentDeleted", contentMsg),
		cond(condContentRemaining, len(counts) > 0, "SomeResourcesRemain", "ContentRemoved", remainingMsg),
		cond(condFinalizersRemained, len(finalizers) > 0, "SomeFinalizersRemain", "ContentHasNoFinalizers", finMsg),
	}
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// setConditions writes the deletion conditions when they changed.
func (c *Controller) setConditions(ctx context.Context, ns *corev1.Namespace, conds []corev1.NamespaceCondition) error {
	changed := false
	next := ns.DeepCopy()
	now := metav1.NewTime(c.now())
	for _, want := range conds {
		found := false
		for i := range next.Status.Conditions {
			have := &next.Status.Conditions[i]
			if have.Type != want.Type {
				continue
			}
			found = true
			if have.Status != want.Status || have.Reason != want.Reason || have.Message != want.Message {
				if have.Status != want.Status {
					have.LastTransitionTime = now
				}
				have.Status, have.Reason, have.Message = want.Status, want.Reason, want.Message
				changed = true
			}
		}
		if !found {
			want.LastTransitionTime = now
			next.Status.Conditions = append(next.Status.Conditions, want)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // the next pass works from fresh state
	}
	return err
}

// finalize removes the "kubernetes" finalizer; the API server then
// deletes the namespace.
func (c *Controller) finalize(ctx context.Context, ns *corev1.Namespace) error {
	fresh, err := c.client.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []corev1.FinalizerName
	for _, f := range fresh.Spec.Finalizers {
		if f != corev1.FinalizerKubernetes {
			keep = append(keep, f)
		}
	}
	fresh.Spec.Finalizers = keep
	_, err = c.client.CoreV1().Namespaces().Finalize(ctx, fresh, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
