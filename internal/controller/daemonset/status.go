package daemonset

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controller"
)

// computeStatus counts nodes as upstream: each node that should run the
// daemon is desired; its oldest pod decides whether it is ready,
// available and updated. It also returns when a ready pod becomes
// available, to look again then.
func computeStatus(ds *appsv1.DaemonSet, v *view, hash string, collisions int32, now time.Time) (appsv1.DaemonSetStatus, time.Duration) {
	st := *ds.Status.DeepCopy()
	var desired, scheduled, misscheduled, ready, available, updated int32
	var retry time.Duration
	for _, n := range v.nodes {
		pods := v.byNode[n.Name]
		if !v.run[n.Name] {
			if len(pods) > 0 {
				misscheduled++
			}
			continue
		}
		desired++
		if len(pods) == 0 {
			continue
		}
		scheduled++
		p := pods[0]
		if controller.IsPodReady(p) {
			ready++
			if controller.IsPodAvailable(p, ds.Spec.MinReadySeconds, now) {
				available++
			} else {
				c := controller.PodReadyCondition(p)
				left := c.LastTransitionTime.Add(time.Duration(ds.Spec.MinReadySeconds)*time.Second).Sub(now) + 100*time.Millisecond
				if retry == 0 || left < retry {
					retry = max(left, 100*time.Millisecond)
				}
			}
		}
		if hashOf(p) == hash {
			updated++
		}
	}
	st.DesiredNumberScheduled, st.CurrentNumberScheduled, st.NumberMisscheduled = desired, scheduled, misscheduled
	st.NumberReady, st.NumberAvailable, st.UpdatedNumberScheduled = ready, available, updated
	st.NumberUnavailable = max(0, desired-available)
	st.ObservedGeneration = ds.Generation
	st.CollisionCount = &collisions
	return st, retry
}

// updateStatus writes st when it changed, retrying once on a conflict.
func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, st appsv1.DaemonSetStatus) error {
	if apiequality.Semantic.DeepEqual(ds.Status, st) {
		return nil
	}
	for attempt := 0; ; attempt++ {
		next := ds.DeepCopy()
		next.Status = st
		_, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if attempt == 1 || !apierrors.IsConflict(err) {
			return fmt.Errorf("update status of daemonset %s/%s: %w", ds.Namespace, ds.Name, err)
		}
		fresh, gerr := c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
		if gerr != nil || fresh.UID != ds.UID {
			return err
		}
		st.ObservedGeneration = min(st.ObservedGeneration, fresh.Generation)
		ds = fresh
	}
}
