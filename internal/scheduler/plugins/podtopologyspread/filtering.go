package podtopologyspread

import (
	"context"
	"maps"
	"math"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

const preFilterKey = "PreFilter" + Name

// preFilterState holds, per DoNotSchedule constraint, the matching pods by
// domain and the global minimum the skew is measured against.
type preFilterState struct {
	constraints []constraint
	counts      []map[string]int
	minMatch    []int
	required    nodeaffinity.RequiredNodeAffinity
}

// Clone copies the counts, which AddPod and RemovePod change.
func (s *preFilterState) Clone() any {
	c := *s
	c.counts = make([]map[string]int, len(s.counts))
	for i := range s.counts {
		c.counts[i] = maps.Clone(s.counts[i])
	}
	c.minMatch = slices.Clone(s.minMatch)
	return &c
}

// setMinimums recomputes the global minimum per constraint.
func (s *preFilterState) setMinimums() {
	for i := range s.constraints {
		s.minMatch[i] = 0
		if len(s.counts[i]) < int(s.constraints[i].minDomains) {
			continue // fewer domains than minDomains: the minimum is 0
		}
		lo := math.MaxInt
		for _, v := range s.counts[i] {
			lo = min(lo, v)
		}
		s.minMatch[i] = lo
	}
}

// update counts p on node n in (delta 1) or out (delta -1) of the
// domains, as PreFilter counted the pods that were there.
func (s *preFilterState) update(pod, p *corev1.Pod, n *framework.NodeInfo, delta int) {
	if p.Namespace != pod.Namespace || p.DeletionTimestamp != nil || !hasAllKeys(n.Node, s.constraints) {
		return
	}
	changed := false
	for i := range s.constraints {
		c := &s.constraints[i]
		if !c.matcher.Matches(p.Labels) || !c.includes(pod, n.Node, s.required) {
			continue
		}
		s.counts[i][n.Node.Labels[c.topologyKey]] += delta
		changed = true
	}
	if changed {
		s.setMinimums()
	}
}

// AddPod counts a pod a what-if places on node.
func (pl PodTopologySpread) AddPod(_ context.Context, state *framework.CycleState, pod, add *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	if v, ok := state.Read(preFilterKey); ok {
		v.(*preFilterState).update(pod, add, node, 1)
	}
	return nil
}

// RemovePod uncounts a pod a what-if takes off node.
func (pl PodTopologySpread) RemovePod(_ context.Context, state *framework.CycleState, pod, remove *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	if v, ok := state.Read(preFilterKey); ok {
		v.(*preFilterState).update(pod, remove, node, -1)
	}
	return nil
}

// PreFilter counts matching pods per domain over every eligible node (one
// carrying all the constraints' keys and passing the inclusion policies).
// Skip when the pod has no DoNotSchedule constraint.
func (pl PodTopologySpread) PreFilter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, snap *framework.Snapshot) *framework.Status {
	cs, err := constraintsOf(pod, corev1.DoNotSchedule)
	if err != nil {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, err.Error())
	}
	if len(cs) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	s := &preFilterState{constraints: cs, counts: make([]map[string]int, len(cs)), minMatch: make([]int, len(cs))}
	for i := range cs {
		s.counts[i] = map[string]int{}
	}
	required := nodeaffinity.GetRequiredNodeAffinity(pod)
	for _, n := range snap.Nodes {
		if !hasAllKeys(n.Node, cs) {
			continue
		}
		for i := range cs {
			c := &cs[i]
			if !c.includes(pod, n.Node, required) {
				continue
			}
			// Adding zero still records the domain: an empty domain is
			// the global minimum.
			s.counts[i][n.Node.Labels[c.topologyKey]] += countMatching(n.Pods, &c.matcher, pod.Namespace)
		}
	}
	s.required = required
	s.setMinimums()
	state.Write(preFilterKey, s)
	return nil
}

// Filter rejects a node whose domain would exceed maxSkew with the pod on
// it, or that lacks a constraint's topology key.
func (pl PodTopologySpread) Filter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) *framework.Status {
	v, ok := state.Read(preFilterKey)
	if !ok {
		return framework.NewStatus(framework.Error, "podtopologyspread: no PreFilter state")
	}
	s := v.(*preFilterState)
	podLabels := labels.Set(pod.Labels)
	for i := range s.constraints {
		c := &s.constraints[i]
		value, ok := n.Node.Labels[c.topologyKey]
		if !ok {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonNodeLabelNotMatch)
		}
		self := 0
		if c.selector.Matches(podLabels) {
			self = 1
		}
		if s.counts[i][value]+self-s.minMatch[i] > int(c.maxSkew) {
			return framework.NewStatus(framework.Unschedulable, ErrReasonConstraintsNotMatch)
		}
	}
	return nil
}
