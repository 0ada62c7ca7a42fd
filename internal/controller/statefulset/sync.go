package statefulset

import (
	"context"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/history"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
)

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	s, err := c.setLister.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	if s.DeletionTimestamp != nil {
		return nil // the garbage collector removes the pods
	}
	sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil // validation prevents this
	}
	canAdopt := func(ctx context.Context) error {
		fresh, err := c.client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if fresh.UID != s.UID || fresh.DeletionTimestamp != nil {
			return fmt.Errorf("statefulset %s was deleted or recreated", key)
		}
		return nil
	}
	revs, err := history.Owned(ctx, c.client, c.revIndex, s, kind, sel, canAdopt)
	if err != nil {
		return err
	}
	candidates, err := replicaset.OwnedOrOrphans[*corev1.Pod](c.podIndex, ns, s.UID)
	if err != nil {
		return err
	}
	claimer := &controller.Claimer{Owner: s, Kind: kind, Selector: sel, CanAdopt: canAdopt,
		Patch: func(ctx context.Context, pod string, patch []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}}
	pods, err := claimer.ClaimPods(ctx, candidates)
	if err != nil {
		return err
	}

	current, update, collisions, err := c.revisions(ctx, s, revs)
	if err != nil {
		return err
	}
	var manageErr error
	var retry time.Duration
	if c.exp.Satisfied(key) {
		retry, manageErr = c.manage(ctx, key, s, current, update, pods)
	}
	st := computeStatus(s, pods, current, update, collisions, c.now())
	if err := c.updateStatus(ctx, s, st); err != nil {
		return err
	}
	if manageErr != nil {
		return manageErr
	}
	if retry > 0 {
		c.queue.AddAfter(key, retry)
	}
	// Keep the revisions live pods and the status use, and the newest
	// others up to the limit.
	live := map[string]bool{st.CurrentRevision: true, st.UpdateRevision: true}
	for _, p := range pods {
		live[revisionOf(p)] = true
	}
	limit := int32(10)
	if s.Spec.RevisionHistoryLimit != nil {
		limit = *s.Spec.RevisionHistoryLimit
	}
	return history.Truncate(ctx, c.client, revs, live, limit)
}

// revisions returns the set's current and update revisions, creating the
// update revision (or renumbering an equal older one, on rollback) as
// upstream does, and the collision count that named it.
func (c *Controller) revisions(ctx context.Context, s *appsv1.StatefulSet, revs []*appsv1.ControllerRevision) (cur, upd *appsv1.ControllerRevision, collisions int32, err error) {
	history.Sort(revs)
	if s.Status.CollisionCount != nil {
		collisions = *s.Status.CollisionCount
	}
	data, err := history.TemplatePatch(&s.Spec.Template)
	if err != nil {
		return nil, nil, 0, err
	}
	upd = history.New(s, kind, s.Spec.Template.Labels, data, history.Max(revs)+1, &collisions)
	equal := history.FindEqual(revs, upd)
	switch {
	case len(equal) > 0 && equal[len(equal)-1] == revs[len(revs)-1]:
		upd = equal[len(equal)-1]
	case len(equal) > 0:
		bump := equal[len(equal)-1].DeepCopy()
		bump.Revision = upd.Revision
		upd, err = c.client.AppsV1().ControllerRevisions(s.Namespace).Update(ctx, bump, metav1.UpdateOptions{})
		if err != nil {
			return nil, nil, 0, fmt.Errorf("renumber revision %s: %w", bump.Name, err)
		}
	default:
		upd, err = history.Create(ctx, c.client, s, upd, &collisions)
		if err != nil {
			return nil, nil, 0, err
		}
	}
	for _, r := range revs {
		if r.Name == s.Status.CurrentRevision {
			cur = r
		}
	}
	if cur == nil {
		cur = upd
	}
	return cur, upd, collisions, nil
}

// manage moves the pods one step toward the spec, as upstream's
// UpdateStatefulSet: replace finished pods, create missing ordinals,
// delete condemned ones from the highest, then roll outdated pods from the
// highest ordinal down to the partition. With OrderedReady each step waits
// for every lower ordinal to be Running and Ready. It returns when to look
// again for a pod that only needs time to become available.
func (c *Controller) manage(ctx context.Context, key string, s *appsv1.StatefulSet, cur, upd *appsv1.ControllerRevision, pods []*corev1.Pod) (time.Duration, error) {
	curTmpl, err := history.Template(cur)
	if err != nil {
		return 0, err
	}
	updTmpl, err := history.Template(upd)
	if err != nil {
		return 0, err
	}
	start, n := ordinalStart(s), replicas(s)
	slots := make([]*corev1.Pod, n)
	var condemned []*corev1.Pod
	for _, p := range pods {
		ord, ok := ordinalOf(s, p)
		if !ok {
			continue
		}
		if ord >= start && ord < start+n {
			slots[ord-start] = p
		} else {
			condemned = append(condemned, p)
		}
	}
	sort.Slice(condemned, func(i, j int) bool {
		a, _ := ordinalOf(s, condemned[i])
		b, _ := ordinalOf(s, condemned[j])
		return a > b
	})
	monotonic := s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	now := c.now()
	var retry time.Duration
	waitAvailable := func(p *corev1.Pod) {
		if ready := controller.PodReadyCondition(p); ready != nil && ready.Status == corev1.ConditionTrue {
			left := ready.LastTransitionTime.Add(time.Duration(s.Spec.MinReadySeconds)*time.Second).Sub(now) + 100*time.Millisecond
			if retry == 0 || left < retry {
				retry = max(left, 100*time.Millisecond)
			}
		}
	}
	rolling := s.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType
	partition := 0
	if ru := s.Spec.UpdateStrategy.RollingUpdate; rolling && ru != nil && ru.Partition != nil {
		partition = int(*ru.Partition)
	}

	for i, p := range slots {
		ord := start + i
		if p != nil && isFinished(p) && p.DeletionTimestamp == nil {
			c.recorder.Eventf(s, corev1.EventTypeWarning, "RecreatingFailedPod", "StatefulSet %s/%s is recreating failed Pod %s", s.Namespace, s.Name, p.Name)
			if err := c.removePod(ctx, key, s, p); err != nil {
				return 0, err
			}
			if monotonic {
				return 0, nil
			}
			continue
		}
		if p == nil {
			// Ordinals below the partition stay at the current revision.
			tmpl, rev := updTmpl, upd.Name
			if rolling && i < partition {
				tmpl, rev = curTmpl, cur.Name
			}
			if err := c.createPod(ctx, key, s, newPod(s, tmpl, rev, ord), ord); err != nil {
				return 0, err
			}
			if monotonic {
				return 0, nil
			}
			continue
		}
		if !monotonic {
			continue
		}
		if p.DeletionTimestamp != nil {
			return 0, nil // wait for it to go
		}
		if !isRunningAndReady(p) {
			return 0, nil
		}
		if !controller.IsPodAvailable(p, s.Spec.MinReadySeconds, now) {
			waitAvailable(p)
			return retry, nil
		}
	}

	firstUnhealthy := ""
	for _, p := range append(append([]*corev1.Pod(nil), slots...), condemned...) {
		if !isHealthy(p, s.Spec.MinReadySeconds, now) {
			if p != nil {
				firstUnhealthy = p.Name
			}
			break
		}
	}
	for _, p := range condemned {
		if p.DeletionTimestamp != nil {
			if monotonic {
				return 0, nil
			}
			continue
		}
		if monotonic && !isRunningAndReady(p) && firstUnhealthy != "" && p.Name != firstUnhealthy {
			return 0, nil
		}
		ord, _ := ordinalOf(s, p)
		if err := c.ownClaimsByPod(ctx, s, p, ord); err != nil {
			return 0, err
		}
		c.recorder.Eventf(s, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Name, s.Name)
		if err := c.removePod(ctx, key, s, p); err != nil {
			return 0, err
		}
		if monotonic {
			return 0, nil
		}
	}

	if !rolling {
		return retry, nil
	}
	// Roll: at most maxUnavailable pods unavailable at once, the highest
	// outdated ordinal first, never below the partition.
	maxUnavailable := 1
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		v, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(ru.MaxUnavailable, intstr.FromInt32(1)), n, false)
		if err == nil {
			maxUnavailable = max(v, 1)
		}
	}
	unavailable := 0
	for _, p := range slots {
		if !isHealthy(p, s.Spec.MinReadySeconds, now) {
			unavailable++
			if p != nil && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && controller.IsPodReady(p) {
				waitAvailable(p)
			}
		}
	}
	budget := maxUnavailable - unavailable
	for i := n - 1; i >= partition && budget > 0; i-- {
		p := slots[i]
		if p == nil || p.DeletionTimestamp != nil || revisionOf(p) == upd.Name {
			continue
		}
		c.recorder.Eventf(s, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Name, s.Name)
		if err := c.removePod(ctx, key, s, p); err != nil {
			return 0, err
		}
		budget--
	}
	return retry, nil
}

func (c *Controller) createPod(ctx context.Context, key string, s *appsv1.StatefulSet, pod *corev1.Pod, ord int) error {
	if err := c.createClaims(ctx, s, ord); err != nil {
		return err
	}
	c.exp.ExpectCreations(key, 1)
	_, err := c.client.CoreV1().Pods(s.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.exp.CreationObserved(key)
		if apierrors.IsAlreadyExists(err) {
			return nil // the cache is behind; the pod's event brings us back
		}
		c.recorder.Eventf(s, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %v", pod.Name, s.Name, err)
		return fmt.Errorf("create pod %s: %w", pod.Name, err)
	}
	c.recorder.Eventf(s, corev1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", pod.Name, s.Name)
	return nil
}

func (c *Controller) removePod(ctx context.Context, key string, s *appsv1.StatefulSet, p *corev1.Pod) error {
	c.exp.ExpectDeletions(key, []types.UID{p.UID})
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil {
		c.exp.DeletionObserved(key, p.UID)
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		c.recorder.Eventf(s, corev1.EventTypeWarning, "FailedDelete", "delete Pod %s in StatefulSet %s failed error: %v", p.Name, s.Name, err)
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	}
	return nil
}
