package quota

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	podsGR     = schema.GroupResource{Resource: "pods"}
	servicesGR = schema.GroupResource{Resource: "services"}
	claimsGR   = schema.GroupResource{Resource: "persistentvolumeclaims"}
)

// Charge returns what obj, a new object of gr, adds to each resource of
// q's spec.hard: nothing for resources it does not count against, or when
// it is outside q's scopes (scopes only ever select pods).
func Charge(q *corev1.ResourceQuota, gr schema.GroupResource, obj runtime.Object, now time.Time) corev1.ResourceList {
	one := func() resource.Quantity { return *resource.NewQuantity(1, resource.DecimalSI) }
	pod, _ := obj.(*corev1.Pod)
	if gr == podsGR && pod != nil {
		if charge, _ := ChargesPod(pod, now); !charge || !PodInScopes(pod, ScopeRequirements(q)) {
			return nil
		}
	} else if len(ScopeRequirements(q)) > 0 {
		return nil
	}
	out := corev1.ResourceList{}
	for name := range q.Spec.Hard {
		s := string(name)
		switch {
		case gr == podsGR && pod != nil && (name == corev1.ResourcePods || name == CountPrefix+"pods"):
			out[name] = one()
		case gr == podsGR && pod != nil:
			if res, limits, ok := PodCompute(name); ok {
				out[name] = PodAmount(pod, res, limits)
			}
		case gr == servicesGR && (name == ServicesLoadBalancers || name == ServicesNodePorts):
			svc, ok := obj.(*corev1.Service)
			if !ok {
				continue
			}
			lbs, ports := ServiceUsage([]*corev1.Service{svc})
			n := ports
			if name == ServicesLoadBalancers {
				n = lbs
			}
			if n > 0 {
				out[name] = *resource.NewQuantity(n, resource.DecimalSI)
			}
		case gr == claimsGR && (name == corev1.ResourceRequestsStorage || strings.Contains(s, StorageClassSuffix)):
			pvc, ok := obj.(*corev1.PersistentVolumeClaim)
			if !ok {
				continue
			}
			what := s
			if i := strings.Index(s, StorageClassSuffix); i >= 0 {
				if PVCClass(pvc) != s[:i] {
					continue
				}
				what = s[i+len(StorageClassSuffix):]
			}
			switch corev1.ResourceName(what) {
			case corev1.ResourceRequestsStorage:
				out[name] = PVCStorage(pvc)
			case corev1.ResourcePersistentVolumeClaims:
				out[name] = one()
			}
		default:
			if counted, ok := CountedResource(name); ok && counted == gr {
				out[name] = one()
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// MissingRequirements names what a pod must declare because q limits it
// and no container says (upstream: a quota on requests.cpu makes every
// container specify a cpu request), as "limits.cpu for: a,b; ...". Empty
// when nothing is missing or the pod is outside q's scopes.
func MissingRequirements(q *corev1.ResourceQuota, pod *corev1.Pod) string {
	if !PodInScopes(pod, ScopeRequirements(q)) {
		return ""
	}
	type need struct {
		res    corev1.ResourceName
		limits bool
	}
	required := map[corev1.ResourceName]need{}
	for name := range q.Spec.Hard {
		switch name {
		case corev1.ResourceCPU, corev1.ResourceRequestsCPU:
			required[corev1.ResourceRequestsCPU] = need{corev1.ResourceCPU, false}
		case corev1.ResourceMemory, corev1.ResourceRequestsMemory:
			required[corev1.ResourceRequestsMemory] = need{corev1.ResourceMemory, false}
		case corev1.ResourceLimitsCPU:
			required[name] = need{corev1.ResourceCPU, true}
		case corev1.ResourceLimitsMemory:
			required[name] = need{corev1.ResourceMemory, true}
		}
	}
	var parts []string
	for name, r := range required {
		var missing []string
		for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for _, c := range cs {
				l := c.Resources.Requests
				if r.limits {
					l = c.Resources.Limits
				}
				if _, ok := l[r.res]; !ok {
					missing = append(missing, c.Name)
				}
			}
		}
		if len(missing) > 0 {
			parts = append(parts, fmt.Sprintf("%s for: %s", name, strings.Join(missing, ",")))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// Exceeds returns the resources of charge that would take used over
// hard, with the new totals; nil if none would.
func Exceeds(hard, used, charge corev1.ResourceList) []corev1.ResourceName {
	var over []corev1.ResourceName
	for name, q := range charge {
		limit, ok := hard[name]
		if !ok {
			continue
		}
		total := used[name].DeepCopy()
		total.Add(q)
		if total.Cmp(limit) > 0 {
			over = append(over, name)
		}
	}
	sort.Slice(over, func(i, j int) bool { return over[i] < over[j] })
	return over
}

// Add returns a + b for the names in b (and a's other names as they are).
func Add(a, b corev1.ResourceList) corev1.ResourceList {
	out := a.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	for name, q := range b {
		sum := out[name].DeepCopy()
		sum.Add(q)
		out[name] = sum
	}
	return out
}

// Format prints the named entries of l as upstream's quota messages do:
// "pods=1,requests.cpu=500m", sorted by name.
func Format(l corev1.ResourceList, names []corev1.ResourceName) string {
	parts := make([]string, 0, len(names))
	for _, n := range names {
		q := l[n]
		parts = append(parts, fmt.Sprintf("%s=%s", n, q.String()))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
