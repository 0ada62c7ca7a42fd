package disruption

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/skiff-sh/skiff/internal/controller"
)

// scaleFunc returns the UID and desired scale of the controller a pod's
// controller reference names; found is false if it is none this
// controller knows.
type scaleFunc func(ns string, ref *metav1.OwnerReference) (uid types.UID, scale int32, found bool, err error)

// computeStatus derives a budget's status from the pods it selects. It
// returns the pods without a controller (a percentage cannot count them)
// and when to look again for disruptedPods entries that will expire.
func computeStatus(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, scale scaleFunc, now time.Time) (
	st policyv1.PodDisruptionBudgetStatus, unmanaged []string, recheck time.Duration, err error) {
	expected, desired, unmanaged, err := expectedAndDesired(pdb, pods, scale)
	if err != nil {
		return st, unmanaged, 0, err
	}
	disrupted, recheck := disruptedPods(pdb, pods, now)
	healthy := countHealthy(pods, disrupted, now)
	allowed := healthy - desired
	// No expected pods: a budget whose pods have not appeared yet must not
	// allow disruptions before it has seen them.
	if expected <= 0 || allowed < 0 {
		allowed = 0
	}
	st = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation,
		DisruptedPods:      disrupted,
		DisruptionsAllowed: allowed,
		CurrentHealthy:     healthy,
		DesiredHealthy:     desired,
		ExpectedPods:       expected,
		Conditions:         append([]metav1.Condition(nil), pdb.Status.Conditions...),
	}
	cond := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionTrue,
		Reason: policyv1.SufficientPodsReason, ObservedGeneration: st.ObservedGeneration}
	if allowed <= 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, policyv1.InsufficientPodsReason
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	return st, unmanaged, recheck, nil
}

// expectedAndDesired returns expectedPods and desiredHealthy as upstream:
// minAvailable as a number expects the selected pods; a percentage of
// minAvailable, or any maxUnavailable, expects the sum of the scales of
// the pods' controllers. Percentages round up.
func expectedAndDesired(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, scale scaleFunc) (
	expected, desired int32, unmanaged []string, err error) {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		expected, unmanaged, err = expectedScale(pods, scale)
		if err != nil {
			return 0, 0, unmanaged, err
		}
		maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
		if err != nil {
			return 0, 0, unmanaged, err
		}
		desired = max(expected-int32(maxUnavailable), 0)
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int:
		desired = pdb.Spec.MinAvailable.IntVal
		expected = int32(len(pods))
	case pdb.Spec.MinAvailable != nil:
		expected, unmanaged, err = expectedScale(pods, scale)
		if err != nil {
			return 0, 0, unmanaged, err
		}
		minAvailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
		if err != nil {
			return 0, 0, unmanaged, err
		}
		desired = int32(minAvailable)
	}
	return expected, desired, unmanaged, nil
}

// expectedScale sums the scale of every controller of the pods, each once.
// Pods without a controller are returned, not counted.
func expectedScale(pods []*corev1.Pod, scale scaleFunc) (int32, []string, error) {
	seen := map[types.UID]int32{}
	var unmanaged []string
	for _, p := range pods {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil {
			unmanaged = append(unmanaged, p.Name)
			continue
		}
		if _, ok := seen[ref.UID]; ok {
			continue
		}
		uid, n, found, err := scale(p.Namespace, ref)
		if err != nil {
			return 0, unmanaged, err
		}
		if !found {
			return 0, unmanaged, fmt.Errorf("found no controllers for pod %q", p.Name)
		}
		seen[uid] = n
	}
	var sum int32
	for _, n := range seen {
		sum += n
	}
	return sum, unmanaged, nil
}

// disruptedPods keeps the entries of status.disruptedPods whose pod still
// exists, is not yet being deleted and was evicted less than
// DeletionTimeout ago; it returns when the first kept entry expires.
func disruptedPods(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, now time.Time) (map[string]metav1.Time, time.Duration) {
	if len(pdb.Status.DisruptedPods) == 0 {
		return nil, 0
	}
	out := map[string]metav1.Time{}
	var recheck time.Duration
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		at, ok := pdb.Status.DisruptedPods[p.Name]
		if !ok {
			continue
		}
		expires := at.Add(DeletionTimeout)
		if !now.Before(expires) {
			continue // the eviction never happened
		}
		out[p.Name] = at
		if d := expires.Sub(now); recheck == 0 || d < recheck {
			recheck = d
		}
	}
	if len(out) == 0 {
		return nil, 0
	}
	return out, recheck
}

// countHealthy counts Ready pods that are neither being deleted nor
// recently evicted.
func countHealthy(pods []*corev1.Pod, disrupted map[string]metav1.Time, now time.Time) int32 {
	var n int32
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if at, ok := disrupted[p.Name]; ok && at.Add(DeletionTimeout).After(now) {
			continue
		}
		if controller.IsPodReady(p) {
			n++
		}
	}
	return n
}

// scaleFinder finds the scale of the workload controllers upstream knows
// without the scale subresource.
type scaleFinder struct {
	rss          appslisters.ReplicaSetLister
	deployments  appslisters.DeploymentLister
	statefulSets appslisters.StatefulSetLister
	rcs          corelisters.ReplicationControllerLister
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

func isApps(ref *metav1.OwnerReference, kind string) bool {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && ref.Kind == kind && (gv.Group == "apps" || gv.Group == "extensions")
}

func (f scaleFinder) scale(ns string, ref *metav1.OwnerReference) (types.UID, int32, bool, error) {
	notFound := func(err error) (types.UID, int32, bool, error) {
		if apierrors.IsNotFound(err) {
			return "", 0, false, nil
		}
		return "", 0, false, err
	}
	switch {
	case isApps(ref, "ReplicaSet"):
		rs, err := f.rss.ReplicaSets(ns).Get(ref.Name)
		if err != nil {
			return notFound(err)
		}
		if rs.UID != ref.UID {
			return "", 0, false, nil
		}
		// A Deployment's ReplicaSets scale with it: count the Deployment.
		if dref := metav1.GetControllerOfNoCopy(rs); dref != nil && isApps(dref, "Deployment") {
			d, err := f.deployments.Deployments(ns).Get(dref.Name)
			if err != nil {
				return notFound(err)
			}
			if d.UID != dref.UID {
				return "", 0, false, nil
			}
			return d.UID, replicas(d.Spec.Replicas), true, nil
		}
		return rs.UID, replicas(rs.Spec.Replicas), true, nil
	case isApps(ref, "StatefulSet"):
		ss, err := f.statefulSets.StatefulSets(ns).Get(ref.Name)
		if err != nil {
			return notFound(err)
		}
		if ss.UID != ref.UID {
			return "", 0, false, nil
		}
		return ss.UID, replicas(ss.Spec.Replicas), true, nil
	case ref.Kind == "ReplicationController" && ref.APIVersion == "v1":
		rc, err := f.rcs.ReplicationControllers(ns).Get(ref.Name)
		if err != nil {
			return notFound(err)
		}
		if rc.UID != ref.UID {
			return "", 0, false, nil
		}
		return rc.UID, replicas(rc.Spec.Replicas), true, nil
	}
	return "", 0, false, nil
}
