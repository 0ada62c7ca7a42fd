package endpointutil

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// ServicesForPod returns the keys of the Services in the pod's namespace
// whose selector matches the pod (Services without a selector match
// nothing).
func ServicesForPod(lister corelisters.ServiceLister, pod *corev1.Pod) sets.Set[string] {
	out := sets.New[string]()
	svcs, err := lister.Services(pod.Namespace).List(labels.Everything())
	if err != nil {
		return out
	}
	for _, s := range svcs {
		if s.Spec.Selector == nil {
			continue
		}
		if labels.SelectorFromValidatedSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			out.Insert(s.Namespace + "/" + s.Name)
		}
	}
	return out
}

// ServicesForPodUpdate returns the Service keys a pod update concerns: none
// when nothing relevant changed, the Services matching the new labels, and
// also those of the old labels when the labels changed.
func ServicesForPodUpdate(lister corelisters.ServiceLister, old, cur *corev1.Pod) sets.Set[string] {
	if old.ResourceVersion == cur.ResourceVersion {
		return nil
	}
	changed, labelsChanged := PodChanged(old, cur)
	if !changed && !labelsChanged {
		return nil
	}
	keys := ServicesForPod(lister, cur)
	if labelsChanged {
		keys = keys.Union(ServicesForPod(lister, old))
	}
	return keys
}

// PodFromDelete unwraps a pod from a delete notification.
func PodFromDelete(obj any) (*corev1.Pod, bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*corev1.Pod)
	return p, ok
}
