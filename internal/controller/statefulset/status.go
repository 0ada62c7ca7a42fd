package statefulset

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controller"
)

// computeStatus counts the set's pods as upstream: every pod is a replica,
// Running+Ready ones are ready, ready for minReadySeconds available;
// non-terminating pods count toward the revision they run. A RollingUpdate
// whose pods are all updated and ready makes the update revision current.
func computeStatus(s *appsv1.StatefulSet, pods []*corev1.Pod, cur, upd *appsv1.ControllerRevision, collisions int32, now time.Time) appsv1.StatefulSetStatus {
	st := *s.Status.DeepCopy()
	st.ObservedGeneration = s.Generation
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentReplicas, st.UpdatedReplicas = 0, 0, 0, 0, 0
	for _, p := range pods {
		if _, ok := ordinalOf(s, p); !ok {
			continue
		}
		st.Replicas++
		if isRunningAndReady(p) {
			st.ReadyReplicas++
			if controller.IsPodAvailable(p, s.Spec.MinReadySeconds, now) {
				st.AvailableReplicas++
			}
		}
		if p.DeletionTimestamp == nil {
			switch revisionOf(p) {
			case cur.Name:
				st.CurrentReplicas++
				if upd.Name == cur.Name {
					st.UpdatedReplicas++
				}
			case upd.Name:
				st.UpdatedReplicas++
			}
		}
	}
	st.CurrentRevision, st.UpdateRevision = cur.Name, upd.Name
	st.CollisionCount = &collisions
	if s.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType &&
		st.UpdatedReplicas == st.Replicas && st.ReadyReplicas == st.Replicas {
		st.CurrentReplicas = st.UpdatedReplicas
		st.CurrentRevision = st.UpdateRevision
	}
	return st
}

// updateStatus writes st when it changed, retrying once on a conflict.
func (c *Controller) updateStatus(ctx context.Context, s *appsv1.StatefulSet, st appsv1.StatefulSetStatus) error {
	if apiequality.Semantic.DeepEqual(s.Status, st) {
		return nil
	}
	for attempt := 0; ; attempt++ {
		next := s.DeepCopy()
		next.Status = st
		_, err := c.client.AppsV1().StatefulSets(s.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if attempt == 1 || !apierrors.IsConflict(err) {
			return fmt.Errorf("update status of statefulset %s/%s: %w", s.Namespace, s.Name, err)
		}
		fresh, gerr := c.client.AppsV1().StatefulSets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		if gerr != nil || fresh.UID != s.UID {
			return err
		}
		st.ObservedGeneration = min(st.ObservedGeneration, fresh.Generation)
		s = fresh
	}
}
