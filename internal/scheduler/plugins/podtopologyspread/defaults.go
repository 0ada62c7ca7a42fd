package podtopologyspread

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// systemDefaults are upstream's default constraints for a pod without
// any, over its default selector; none when that selector is empty.
func systemDefaults(pod *corev1.Pod, l framework.Listers) []constraint {
	sel := defaultSelector(pod, l)
	if sel.Empty() {
		return nil
	}
	mk := func(key string, skew int32) constraint {
		return constraint{maxSkew: skew, topologyKey: key, selector: sel, matcher: framework.NewLabelMatcher(sel), minDomains: 1,
			nodeAffinityPolicy: corev1.NodeInclusionPolicyHonor, nodeTaintsPolicy: corev1.NodeInclusionPolicyIgnore}
	}
	return []constraint{mk(corev1.LabelHostname, 3), mk(corev1.LabelTopologyZone, 5)}
}

// defaultSelector is upstream's: the selectors of the Services selecting
// the pod, merged, and that of its controlling ReplicationController,
// ReplicaSet or StatefulSet.
func defaultSelector(pod *corev1.Pod, l framework.Listers) labels.Selector {
	set := labels.Set{}
	if l.Services != nil {
		svcs, _ := l.Services.Services(pod.Namespace).List(labels.Everything())
		for _, svc := range svcs {
			if svc.Spec.Selector == nil {
				continue // a nil selector selects nothing
			}
			if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
				set = labels.Merge(set, svc.Spec.Selector)
			}
		}
	}
	sel := set.AsSelector()
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return sel
	}
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	if err != nil {
		return sel
	}
	var ls *metav1.LabelSelector
	switch gv.WithKind(owner.Kind) {
	case corev1.SchemeGroupVersion.WithKind("ReplicationController"):
		if l.ReplicationControllers != nil {
			if rc, err := l.ReplicationControllers.ReplicationControllers(pod.Namespace).Get(owner.Name); err == nil {
				return labels.Merge(set, rc.Spec.Selector).AsSelector()
			}
		}
	case schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}:
		if l.ReplicaSets != nil {
			if rs, err := l.ReplicaSets.ReplicaSets(pod.Namespace).Get(owner.Name); err == nil {
				ls = rs.Spec.Selector
			}
		}
	case schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}:
		if l.StatefulSets != nil {
			if ss, err := l.StatefulSets.StatefulSets(pod.Namespace).Get(owner.Name); err == nil {
				ls = ss.Spec.Selector
			}
		}
	}
	if ls != nil {
		if other, err := metav1.LabelSelectorAsSelector(ls); err == nil {
			if reqs, ok := other.Requirements(); ok {
				sel = sel.Add(reqs...)
			}
		}
	}
	return sel
}
