package podtopologyspread

import (
	"context"
	"math"

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
	for i := range cs {
		if len(s.counts[i]) < int(cs[i].minDomains) {
			continue // fewer domains than minDomains: the minimum is 0
		}
		lo := math.MaxInt
		for _, v := range s.counts[i] {
			lo = min(lo, v)
		}
		s.minMatch[i] = lo
	}
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
