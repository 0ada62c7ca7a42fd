package quota

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource names with a meaning of their own (the rest of spec.hard is a
// compute resource, requests./limits. of one, or count/<resource>.<group>).
const (
	CountPrefix           = "count/"
	requestsPrefix        = "requests."
	limitsPrefix          = "limits."
	StorageClassSuffix    = ".storageclass.storage.k8s.io/"
	ServicesLoadBalancers = "services.loadbalancers"
	ServicesNodePorts     = "services.nodeports"
)

// legacyCounts are the object counts named without the count/ prefix.
var legacyCounts = map[corev1.ResourceName]schema.GroupResource{
	corev1.ResourcePods:                   {Resource: "pods"},
	corev1.ResourceServices:               {Resource: "services"},
	corev1.ResourceReplicationControllers: {Resource: "replicationcontrollers"},
	corev1.ResourceQuotas:                 {Resource: "resourcequotas"},
	corev1.ResourceSecrets:                {Resource: "secrets"},
	corev1.ResourceConfigMaps:             {Resource: "configmaps"},
	corev1.ResourcePersistentVolumeClaims: {Resource: "persistentvolumeclaims"},
}

// CountedResource returns the group-resource a hard limit counts objects
// of, if it is an object count.
func CountedResource(name corev1.ResourceName) (schema.GroupResource, bool) {
	if gr, ok := legacyCounts[name]; ok {
		return gr, true
	}
	s, ok := strings.CutPrefix(string(name), CountPrefix)
	if !ok || s == "" {
		return schema.GroupResource{}, false
	}
	r, g, _ := strings.Cut(s, ".")
	return schema.GroupResource{Group: g, Resource: r}, true
}

// PodCompute returns the pod resource that name charges (requests or
// limits of a container resource), if name is one.
func PodCompute(name corev1.ResourceName) (res corev1.ResourceName, limits bool, ok bool) {
	s := string(name)
	switch {
	case name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage ||
		strings.HasPrefix(s, corev1.ResourceHugePagesPrefix):
		return name, false, true
	case name == corev1.ResourceRequestsStorage || strings.Contains(s, StorageClassSuffix):
		return "", false, false // persistent volume claims
	case strings.HasPrefix(s, requestsPrefix):
		return corev1.ResourceName(strings.TrimPrefix(s, requestsPrefix)), false, true
	case strings.HasPrefix(s, limitsPrefix):
		return corev1.ResourceName(strings.TrimPrefix(s, limitsPrefix)), true, true
	}
	return "", false, false
}

// ChargesPod: a pod counts against quota unless it is finished, or stuck
// terminating past its grace period (a lost node must not block a
// replacement), as upstream. It also returns when that grace ends, if it
// has not yet, so the quota can be looked at again then.
func ChargesPod(p *corev1.Pod, now time.Time) (bool, time.Time) {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false, time.Time{}
	}
	if p.DeletionTimestamp != nil && p.DeletionGracePeriodSeconds != nil {
		end := p.DeletionTimestamp.Add(time.Duration(*p.DeletionGracePeriodSeconds) * time.Second)
		if now.After(end) {
			return false, time.Time{}
		}
		return true, end
	}
	return true, time.Time{}
}

// PodAmount is what the pod asks for of res (requests, or limits): the
// larger of its app containers plus restartable init containers (sidecars)
// and the peak of its init phase, plus the pod overhead.
func PodAmount(p *corev1.Pod, res corev1.ResourceName, limits bool) resource.Quantity {
	get := func(c *corev1.Container) resource.Quantity {
		l := c.Resources.Requests
		if limits {
			l = c.Resources.Limits
		}
		return l[res]
	}
	var sum, sidecars, initPeak resource.Quantity
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		q := get(c)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars.Add(q)
			peak := sidecars.DeepCopy()
			if peak.Cmp(initPeak) > 0 {
				initPeak = peak
			}
			continue
		}
		q.Add(sidecars)
		if q.Cmp(initPeak) > 0 {
			initPeak = q
		}
	}
	for i := range p.Spec.Containers {
		sum.Add(get(&p.Spec.Containers[i]))
	}
	sum.Add(sidecars)
	if initPeak.Cmp(sum) > 0 {
		sum = initPeak
	}
	if q, ok := p.Spec.Overhead[res]; ok {
		sum.Add(q)
	}
	return sum
}

// IsBestEffort: no container asks for or caps cpu or memory.
func IsBestEffort(p *corev1.Pod) bool {
	all := append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...)
	for _, c := range all {
		for _, l := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if q, ok := l[r]; ok && !q.IsZero() {
					return false
				}
			}
		}
	}
	return true
}

func hasCrossNamespaceAffinity(p *corev1.Pod) bool {
	a := p.Spec.Affinity
	if a == nil {
		return false
	}
	var terms []corev1.PodAffinityTerm
	if a.PodAffinity != nil {
		terms = append(terms, a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	if a.PodAntiAffinity != nil {
		terms = append(terms, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	for _, t := range terms {
		if len(t.Namespaces) > 0 || t.NamespaceSelector != nil {
			return true
		}
	}
	return false
}

// ScopeRequirements merges spec.scopes and spec.scopeSelector into one
// list of requirements (scopes as Exists).
func ScopeRequirements(q *corev1.ResourceQuota) []corev1.ScopedResourceSelectorRequirement {
	var out []corev1.ScopedResourceSelectorRequirement
	for _, s := range q.Spec.Scopes {
		out = append(out, corev1.ScopedResourceSelectorRequirement{ScopeName: s, Operator: corev1.ScopeSelectorOpExists})
	}
	if q.Spec.ScopeSelector != nil {
		out = append(out, q.Spec.ScopeSelector.MatchExpressions...)
	}
	return out
}

// PodInScopes reports whether every scope requirement matches the pod.
func PodInScopes(p *corev1.Pod, reqs []corev1.ScopedResourceSelectorRequirement) bool {
	for _, r := range reqs {
		var match bool
		switch r.ScopeName {
		case corev1.ResourceQuotaScopeTerminating:
			match = p.Spec.ActiveDeadlineSeconds != nil && *p.Spec.ActiveDeadlineSeconds >= 0
		case corev1.ResourceQuotaScopeNotTerminating:
			match = p.Spec.ActiveDeadlineSeconds == nil || *p.Spec.ActiveDeadlineSeconds < 0
		case corev1.ResourceQuotaScopeBestEffort:
			match = IsBestEffort(p)
		case corev1.ResourceQuotaScopeNotBestEffort:
			match = !IsBestEffort(p)
		case corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
			match = hasCrossNamespaceAffinity(p)
		case corev1.ResourceQuotaScopePriorityClass:
			match = matchOperator(r, p.Spec.PriorityClassName)
		default:
			match = false // a scope pods do not have
		}
		if !match {
			return false
		}
	}
	return true
}

// matchOperator applies a scope selector requirement to a value ("" is
// no value).
func matchOperator(r corev1.ScopedResourceSelectorRequirement, v string) bool {
	has := false
	for _, x := range r.Values {
		if x == v {
			has = true
		}
	}
	switch r.Operator {
	case corev1.ScopeSelectorOpExists:
		return v != ""
	case corev1.ScopeSelectorOpDoesNotExist:
		return v == ""
	case corev1.ScopeSelectorOpIn:
		return has
	case corev1.ScopeSelectorOpNotIn:
		return !has
	}
	return false
}

// ServiceUsage returns how many load balancers and node ports svcs use.
func ServiceUsage(svcs []*corev1.Service) (lbs, nodePorts int64) {
	for _, s := range svcs {
		switch s.Spec.Type {
		case corev1.ServiceTypeLoadBalancer:
			lbs++
			fallthrough
		case corev1.ServiceTypeNodePort:
			for _, p := range s.Spec.Ports {
				if p.NodePort != 0 || s.Spec.Type == corev1.ServiceTypeNodePort {
					nodePorts++
				}
			}
		}
	}
	return lbs, nodePorts
}

// PVCStorage is what a claim charges to requests.storage: the larger of
// its request and what resizing allocated.
func PVCStorage(c *corev1.PersistentVolumeClaim) resource.Quantity {
	q := c.Spec.Resources.Requests[corev1.ResourceStorage]
	if a, ok := c.Status.AllocatedResources[corev1.ResourceStorage]; ok && a.Cmp(q) > 0 {
		return a.DeepCopy()
	}
	return q.DeepCopy()
}

func PVCClass(c *corev1.PersistentVolumeClaim) string {
	if c.Spec.StorageClassName != nil {
		return *c.Spec.StorageClassName
	}
	return c.Annotations[corev1.BetaStorageClassAnnotation]
}
