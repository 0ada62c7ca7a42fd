package daemonset

import (
	"context"
	"errors"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/history"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
)

// view is what one sync sees: the nodes, where each should run, and the
// DaemonSet's pods by node.
type view struct {
	nodes    []*corev1.Node
	run      map[string]bool // shouldRun
	keep     map[string]bool // shouldContinueRunning
	byNode   map[string][]*corev1.Pod
	orphaned []*corev1.Pod // on nodes that no longer exist
}

func newView(ds *appsv1.DaemonSet, nodes []*corev1.Node, pods []*corev1.Pod) *view {
	v := &view{nodes: nodes, run: map[string]bool{}, keep: map[string]bool{}, byNode: map[string][]*corev1.Pod{}}
	tp := templatePod(ds)
	exists := map[string]bool{}
	for _, n := range nodes {
		exists[n.Name] = true
		v.run[n.Name], v.keep[n.Name] = placement(tp, n)
	}
	for _, p := range pods {
		name := targetNode(p)
		switch {
		case name == "":
		case exists[name]:
			v.byNode[name] = append(v.byNode[name], p)
		case p.DeletionTimestamp == nil:
			v.orphaned = append(v.orphaned, p)
		}
	}
	for _, ps := range v.byNode {
		byAge(ps)
	}
	return v
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	if ds.DeletionTimestamp != nil {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil
	}
	canAdopt := func(ctx context.Context) error {
		fresh, err := c.client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if fresh.UID != ds.UID || fresh.DeletionTimestamp != nil {
			return fmt.Errorf("daemonset %s was deleted or recreated", key)
		}
		return nil
	}
	revs, err := history.Owned(ctx, c.client, c.revIndex, ds, kind, sel, canAdopt)
	if err != nil {
		return err
	}
	cur, collisions, err := c.currentRevision(ctx, ds, revs)
	if err != nil {
		return err
	}
	hash := cur.Labels[history.HashLabel]
	candidates, err := replicaset.OwnedOrOrphans[*corev1.Pod](c.podIndex, ns, ds.UID)
	if err != nil {
		return err
	}
	claimer := &controller.Claimer{Owner: ds, Kind: kind, Selector: sel, CanAdopt: canAdopt,
		Patch: func(ctx context.Context, pod string, patch []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}}
	pods, err := claimer.ClaimPods(ctx, candidates)
	if err != nil {
		return err
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	v := newView(ds, nodes, pods)

	var manageErr error
	if c.exp.Satisfied(key) {
		var acted bool
		acted, manageErr = c.manage(ctx, key, ds, v, hash)
		if manageErr == nil && !acted && ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
			manageErr = c.rollingUpdate(ctx, key, ds, v, hash)
		}
	}
	st, retry := computeStatus(ds, v, hash, collisions, c.now())
	if err := c.updateStatus(ctx, ds, st); err != nil {
		return err
	}
	if manageErr != nil {
		return manageErr
	}
	if retry > 0 {
		c.queue.AddAfter(key, retry)
	}
	live := map[string]bool{cur.Name: true}
	for _, p := range pods {
		live[history.Name(ds.Name, hashOf(p))] = true
	}
	limit := int32(10)
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = *ds.Spec.RevisionHistoryLimit
	}
	return history.Truncate(ctx, c.client, revs, live, limit)
}

// currentRevision finds or creates the revision of the current template
// (renumbering an equal older one on rollback), as upstream's
// constructHistory.
func (c *Controller) currentRevision(ctx context.Context, ds *appsv1.DaemonSet, revs []*appsv1.ControllerRevision) (*appsv1.ControllerRevision, int32, error) {
	history.Sort(revs)
	var collisions int32
	if ds.Status.CollisionCount != nil {
		collisions = *ds.Status.CollisionCount
	}
	data, err := history.TemplatePatch(&ds.Spec.Template)
	if err != nil {
		return nil, 0, err
	}
	want := history.New(ds, kind, ds.Spec.Template.Labels, data, history.Max(revs)+1, &collisions)
	want.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] = want.Labels[history.HashLabel]
	equal := history.FindEqual(revs, want)
	if len(equal) == 0 {
		out, err := history.Create(ctx, c.client, ds, want, &collisions)
		return out, collisions, err
	}
	cur := equal[len(equal)-1]
	if cur.Revision < history.Max(revs) {
		bump := cur.DeepCopy()
		bump.Revision = history.Max(revs) + 1
		cur, err = c.client.AppsV1().ControllerRevisions(ds.Namespace).Update(ctx, bump, metav1.UpdateOptions{})
		if err != nil {
			return nil, 0, fmt.Errorf("renumber revision %s: %w", bump.Name, err)
		}
	}
	return cur, collisions, nil
}

func surgeEnabled(ds *appsv1.DaemonSet) bool {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	return ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType && ru != nil && scaled(ru.MaxSurge, 1000) > 0
}

// manage puts a pod on every node that should run one, deletes failed
// pods and duplicates, and removes pods from nodes that stopped fitting
// or are gone. acted reports whether it issued any write.
func (c *Controller) manage(ctx context.Context, key string, ds *appsv1.DaemonSet, v *view, hash string) (acted bool, err error) {
	var create []string
	var remove []*corev1.Pod
	var failed bool
	surge := surgeEnabled(ds)
	for _, n := range v.nodes {
		pods := v.byNode[n.Name]
		switch {
		case v.run[n.Name] && len(pods) == 0:
			create = append(create, n.Name)
		case v.keep[n.Name]:
			var active []*corev1.Pod
			for _, p := range pods {
				switch {
				case p.DeletionTimestamp != nil:
				case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
					failed = true
					c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod", "Found failed daemon pod %s/%s on node %s, will try to kill it", p.Namespace, p.Name, n.Name)
					remove = append(remove, p)
				default:
					active = append(active, p)
				}
			}
			if len(active) == 0 && len(pods) > 0 && v.run[n.Name] && !anyTerminating(pods) {
				create = append(create, n.Name)
			}
			remove = append(remove, duplicates(active, hash, surge)...)
		default:
			for _, p := range pods {
				if p.DeletionTimestamp == nil {
					remove = append(remove, p)
				}
			}
		}
	}
	if len(create)+len(remove)+len(v.orphaned) == 0 {
		return false, nil
	}
	create = create[:min(len(create), BurstReplicas)]
	remove = remove[:min(len(remove), BurstReplicas)]
	err = c.syncNodes(ctx, key, ds, remove, v.orphaned, create, hash)
	if err == nil && failed {
		err = errors.New("failed daemon pods found, will retry")
	}
	return true, err
}

func anyTerminating(pods []*corev1.Pod) bool {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			return true
		}
	}
	return false
}

// duplicates picks the surplus of a node's active pods (sorted oldest
// first): all but the oldest, or with maxSurge all but the oldest updated
// and the oldest outdated one.
func duplicates(active []*corev1.Pod, hash string, surge bool) []*corev1.Pod {
	if len(active) <= 1 {
		return nil
	}
	if !surge {
		return active[1:]
	}
	var extra []*corev1.Pod
	var upd, old bool
	for _, p := range active {
		isUpd := hashOf(p) == hash
		switch {
		case isUpd && !upd:
			upd = true
		case !isUpd && !old:
			old = true
		default:
			extra = append(extra, p)
		}
	}
	return extra
}

// syncNodes deletes pods (gone: force-deleted, their node is not there to
// finish the deletion) and creates one pod per listed node.
func (c *Controller) syncNodes(ctx context.Context, key string, ds *appsv1.DaemonSet, remove, gone []*corev1.Pod, create []string, hash string) error {
	uids := make([]types.UID, 0, len(remove)+len(gone))
	for _, p := range append(append([]*corev1.Pod(nil), remove...), gone...) {
		uids = append(uids, p.UID)
	}
	c.exp.ExpectDeletions(key, uids)
	c.exp.ExpectCreations(key, len(create))
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	del := func(p *corev1.Pod, force bool) {
		defer wg.Done()
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}
		if force {
			zero := int64(0)
			opts.GracePeriodSeconds = &zero
		}
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, opts)
		if err != nil {
			c.exp.DeletionObserved(key, p.UID)
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return
			}
			c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
			fail(fmt.Errorf("delete pod %s: %w", p.Name, err))
			return
		}
		c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	}
	for _, p := range remove {
		wg.Add(1)
		go del(p, false)
	}
	for _, p := range gone {
		wg.Add(1)
		go del(p, true)
	}
	wg.Wait()
	i := 0
	ok, err := controller.SlowStartBatch(len(create), 1, func() error {
		mu.Lock()
		node := create[i]
		i++
		mu.Unlock()
		out, err := controller.CreatePod(ctx, c.client, newPod(ds, node, hash))
		if err != nil {
			if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			}
			return err
		}
		c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", out.Name)
		return nil
	})
	for j := ok; j < len(create); j++ {
		c.exp.CreationObserved(key)
	}
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func scaled(v *intstr.IntOrString, total int) int {
	if v == nil {
		return 0
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, total, true)
	if err != nil {
		return 0
	}
	return n
}

// rollingUpdate replaces outdated pods as upstream: without surge it
// deletes old pods while fewer than maxUnavailable nodes are unavailable
// (unavailable old pods go at once); with surge it starts new pods beside
// old ones (up to maxSurge at once) and deletes each old pod when its
// replacement is available.
func (c *Controller) rollingUpdate(ctx context.Context, key string, ds *appsv1.DaemonSet, v *view, hash string) error {
	desired := 0
	for _, n := range v.nodes {
		if v.run[n.Name] {
			desired++
		}
	}
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	var maxSurge, maxUnavailable int
	if ru != nil {
		maxSurge, maxUnavailable = scaled(ru.MaxSurge, desired), scaled(ru.MaxUnavailable, desired)
	}
	if maxSurge == 0 && maxUnavailable == 0 {
		maxUnavailable = 1
	}
	now := c.now()
	available := func(p *corev1.Pod) bool { return controller.IsPodAvailable(p, ds.Spec.MinReadySeconds, now) }
	if maxSurge == 0 {
		unavailable := 0
		var allowed, candidates []*corev1.Pod
		for _, n := range v.nodes {
			if !v.run[n.Name] {
				continue
			}
			upd, old, ok := updatedAndOld(v.byNode[n.Name], hash)
			switch {
			case !ok, upd == nil && old == nil, upd != nil && old != nil:
				unavailable++
			case upd != nil:
				if !available(upd) {
					unavailable++
				}
			case !available(old):
				allowed = append(allowed, old)
			case unavailable < maxUnavailable:
				candidates = append(candidates, old)
			}
		}
		room := max(0, min(maxUnavailable-unavailable, len(candidates)))
		remove := append(allowed, candidates[:room]...)
		if len(remove) == 0 {
			return nil
		}
		return c.syncNodes(ctx, key, ds, remove, nil, nil, hash)
	}
	surged := 0
	var remove []*corev1.Pod
	var allowed, candidates []string
	for _, n := range v.nodes {
		if !v.run[n.Name] {
			continue
		}
		upd, old, ok := updatedAndOld(v.byNode[n.Name], hash)
		switch {
		case !ok:
			surged++
		case old == nil:
		case upd == nil && !available(old):
			allowed = append(allowed, n.Name)
		case upd == nil && surged < maxSurge:
			candidates = append(candidates, n.Name)
		case upd == nil:
		case !available(upd):
			surged++
		default:
			remove = append(remove, old)
		}
	}
	room := max(0, min(maxSurge-surged, len(candidates)))
	create := append(allowed, candidates[:room]...)
	if len(remove)+len(create) == 0 {
		return nil
	}
	return c.syncNodes(ctx, key, ds, remove, nil, create, hash)
}
