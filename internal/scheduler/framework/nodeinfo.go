package framework

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Resource is an amount of each schedulable resource.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	Pods             int64
	Scalar           map[corev1.ResourceName]int64
}

// Add adds a resource list.
func (r *Resource) Add(l corev1.ResourceList) {
	for name, q := range l {
		switch name {
		case corev1.ResourceCPU:
			r.MilliCPU += q.MilliValue()
		case corev1.ResourceMemory:
			r.Memory += q.Value()
		case corev1.ResourceEphemeralStorage:
			r.EphemeralStorage += q.Value()
		case corev1.ResourcePods:
			r.Pods += q.Value()
		default:
			if r.Scalar == nil {
				r.Scalar = map[corev1.ResourceName]int64{}
			}
			r.Scalar[name] += q.Value()
		}
	}
}

// max keeps the larger of each resource.
func (r *Resource) max(o Resource) {
	r.MilliCPU = max(r.MilliCPU, o.MilliCPU)
	r.Memory = max(r.Memory, o.Memory)
	r.EphemeralStorage = max(r.EphemeralStorage, o.EphemeralStorage)
	for n, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[corev1.ResourceName]int64{}
		}
		r.Scalar[n] = max(r.Scalar[n], v)
	}
}

// PodRequests is what a pod asks for, as upstream computes it: the sum of
// its containers, at least the largest init container, plus overhead.
func PodRequests(pod *corev1.Pod) Resource {
	var sum Resource
	for _, c := range pod.Spec.Containers {
		sum.Add(c.Resources.Requests)
	}
	var initMax Resource
	for _, c := range pod.Spec.InitContainers {
		var r Resource
		r.Add(c.Resources.Requests)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sum.Add(c.Resources.Requests) // sidecars run alongside
			continue
		}
		initMax.max(r)
	}
	sum.max(initMax)
	sum.Add(pod.Spec.Overhead)
	return sum
}

// CycleRequests is PodRequests(pod) computed once per cycle and kept in
// state (state may be nil: computed every time).
func CycleRequests(state *CycleState, pod *corev1.Pod) Resource {
	const key = "PodRequests"
	if state != nil {
		if v, ok := state.Read(key); ok {
			return v.(Resource)
		}
	}
	r := PodRequests(pod)
	if state != nil {
		state.Write(key, r)
	}
	return r
}

// NodeInfo is a node and the pods placed on it.
type NodeInfo struct {
	Node        *corev1.Node
	Pods        []*corev1.Pod
	Requested   Resource
	Allocatable Resource
	UsedPorts   map[string]bool // "TCP/0.0.0.0/80"
	// PodsWithAffinity are the placed pods with any pod (anti-)affinity
	// term, parsed; PodsWithRequiredAntiAffinity the subset with a required
	// anti-affinity term. Cycles for pods without such terms look only at
	// these.
	PodsWithAffinity             []*PodInfo
	PodsWithRequiredAntiAffinity []*PodInfo
}

// NewNodeInfo builds the info for node with pods.
func NewNodeInfo(node *corev1.Node, pods ...*corev1.Pod) *NodeInfo {
	ni := &NodeInfo{Node: node, UsedPorts: map[string]bool{}}
	ni.Allocatable.Add(node.Status.Allocatable)
	for _, p := range pods {
		ni.AddPod(p)
	}
	return ni
}

// AddPod accounts for a pod placed on the node.
func (n *NodeInfo) AddPod(p *corev1.Pod) {
	n.Pods = append(n.Pods, p)
	req := PodRequests(p)
	n.Requested.MilliCPU += req.MilliCPU
	n.Requested.Memory += req.Memory
	n.Requested.EphemeralStorage += req.EphemeralStorage
	for k, v := range req.Scalar {
		if n.Requested.Scalar == nil {
			n.Requested.Scalar = map[corev1.ResourceName]int64{}
		}
		n.Requested.Scalar[k] += v
	}
	for _, key := range HostPorts(p) {
		n.UsedPorts[key] = true
	}
	if HasPodAffinity(p) {
		pi := NewPodInfo(p)
		n.PodsWithAffinity = append(n.PodsWithAffinity, pi)
		if len(pi.RequiredAntiAffinityTerms) > 0 {
			n.PodsWithRequiredAntiAffinity = append(n.PodsWithRequiredAntiAffinity, pi)
		}
	}
}

func removePodInfo(list []*PodInfo, p *corev1.Pod) []*PodInfo {
	for i, pi := range list {
		if pi.Pod.Namespace == p.Namespace && pi.Pod.Name == p.Name {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// HostPorts lists a pod's host ports as "PROTO/IP/PORT".
func HostPorts(p *corev1.Pod) []string {
	var out []string
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.HostPort <= 0 {
				continue
			}
			proto := port.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ip := port.HostIP
			if ip == "" {
				ip = "0.0.0.0"
			}
			out = append(out, string(proto)+"/"+ip+"/"+resource.NewQuantity(int64(port.HostPort), resource.DecimalSI).String())
		}
	}
	return out
}

// RemovePod forgets a pod placed on the node (matched by namespace/name).
func (n *NodeInfo) RemovePod(p *corev1.Pod) bool {
	for i, q := range n.Pods {
		if q.Namespace != p.Namespace || q.Name != p.Name {
			continue
		}
		n.Pods = append(n.Pods[:i], n.Pods[i+1:]...)
		if HasPodAffinity(q) {
			n.PodsWithAffinity = removePodInfo(n.PodsWithAffinity, q)
			n.PodsWithRequiredAntiAffinity = removePodInfo(n.PodsWithRequiredAntiAffinity, q)
		}
		req := PodRequests(q)
		n.Requested.MilliCPU -= req.MilliCPU
		n.Requested.Memory -= req.Memory
		n.Requested.EphemeralStorage -= req.EphemeralStorage
		for k, v := range req.Scalar {
			n.Requested.Scalar[k] -= v
		}
		n.UsedPorts = map[string]bool{}
		for _, other := range n.Pods {
			for _, key := range HostPorts(other) {
				n.UsedPorts[key] = true
			}
		}
		return true
	}
	return false
}

// SetNode replaces the node object (labels, taints, allocatable changed).
func (n *NodeInfo) SetNode(node *corev1.Node) {
	n.Node = node
	n.Allocatable = Resource{}
	n.Allocatable.Add(node.Status.Allocatable)
}

// Clone returns a copy that can gain and lose pods without changing n
// (the node and the pods themselves are shared, not copied).
func (n *NodeInfo) Clone() *NodeInfo {
	c := &NodeInfo{
		Node:                         n.Node,
		Pods:                         append([]*corev1.Pod(nil), n.Pods...),
		Requested:                    n.Requested,
		Allocatable:                  n.Allocatable,
		UsedPorts:                    make(map[string]bool, len(n.UsedPorts)),
		PodsWithAffinity:             append([]*PodInfo(nil), n.PodsWithAffinity...),
		PodsWithRequiredAntiAffinity: append([]*PodInfo(nil), n.PodsWithRequiredAntiAffinity...),
	}
	if n.Requested.Scalar != nil {
		c.Requested.Scalar = make(map[corev1.ResourceName]int64, len(n.Requested.Scalar))
		for k, v := range n.Requested.Scalar {
			c.Requested.Scalar[k] = v
		}
	}
	for k := range n.UsedPorts {
		c.UsedPorts[k] = true
	}
	return c
}
