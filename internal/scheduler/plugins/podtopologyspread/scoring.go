package podtopologyspread

import (
	"context"
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

const preScoreKey = "PreScore" + Name

// scoreState holds, per ScheduleAnyway constraint, the matching pods in
// each domain that holds a feasible node (hostname constraints are counted
// per node in Score), and the weight that evens out domain counts.
type scoreState struct {
	constraints []constraint
	counts      []map[string]int64
	weights     []float64
	ignored     map[string]bool // feasible nodes lacking a required key
	namespace   string
}

// PreScore counts matching pods per domain over every node, for the
// domains of the feasible nodes only.
func (pl PodTopologySpread) PreScore(_ context.Context, state *framework.CycleState, pod *corev1.Pod, snap *framework.Snapshot, feasible []*framework.NodeInfo) *framework.Status {
	if len(feasible) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	cs, err := constraintsOf(pod, corev1.ScheduleAnyway)
	if err != nil {
		return framework.NewStatus(framework.Error, err.Error())
	}
	// With no constraints at all, the system defaults apply, and nodes
	// missing a key are not ignored (not every cluster has zones).
	requireAll := true
	if len(pod.Spec.TopologySpreadConstraints) == 0 && pl.SystemDefaulted {
		cs, requireAll = systemDefaults(pod, snap.Listers), false
	}
	if len(cs) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	s := &scoreState{constraints: cs, counts: make([]map[string]int64, len(cs)), weights: make([]float64, len(cs)),
		ignored: map[string]bool{}, namespace: pod.Namespace}
	for i := range cs {
		s.counts[i] = map[string]int64{}
	}
	for _, n := range feasible {
		if requireAll && !hasAllKeys(n.Node, cs) {
			s.ignored[n.Node.Name] = true
			continue
		}
		for i := range cs {
			if cs[i].topologyKey == corev1.LabelHostname {
				continue
			}
			if v, ok := n.Node.Labels[cs[i].topologyKey]; ok {
				s.counts[i][v] += 0
			}
		}
	}
	for i := range cs {
		size := len(s.counts[i])
		if cs[i].topologyKey == corev1.LabelHostname {
			size = len(feasible) - len(s.ignored)
		}
		// Upstream's log(size+2): spreading over many domains matters
		// more per pod than over few.
		s.weights[i] = math.Log(float64(size + 2))
	}
	required := nodeaffinity.GetRequiredNodeAffinity(pod)
	for _, n := range snap.Nodes {
		if requireAll && !hasAllKeys(n.Node, cs) {
			continue
		}
		for i := range cs {
			c := &cs[i]
			if c.topologyKey == corev1.LabelHostname {
				continue
			}
			v, ok := n.Node.Labels[c.topologyKey]
			if !ok {
				continue
			}
			if _, candidate := s.counts[i][v]; !candidate || !c.includes(pod, n.Node, required) {
				continue
			}
			s.counts[i][v] += int64(countMatching(n.Pods, &c.matcher, pod.Namespace))
		}
	}
	state.Write(preScoreKey, s)
	return nil
}

// Score is higher for more matching pods in the node's domains (inverted
// in NormalizeScore).
func (pl PodTopologySpread) Score(_ context.Context, state *framework.CycleState, _ *corev1.Pod, n *framework.NodeInfo) (int64, *framework.Status) {
	v, ok := state.Read(preScoreKey)
	if !ok {
		return 0, framework.NewStatus(framework.Error, "podtopologyspread: no PreScore state")
	}
	s := v.(*scoreState)
	if s.ignored[n.Node.Name] {
		return 0, nil
	}
	var score float64
	for i := range s.constraints {
		c := &s.constraints[i]
		value, ok := n.Node.Labels[c.topologyKey]
		if !ok {
			continue
		}
		var cnt int64
		if c.topologyKey == corev1.LabelHostname {
			cnt = int64(countMatching(n.Pods, &c.matcher, s.namespace))
		} else {
			cnt = s.counts[i][value]
		}
		score += float64(cnt)*s.weights[i] + float64(c.maxSkew-1)
	}
	return int64(math.Round(score)), nil
}

// NormalizeScore inverts the raw scores to 0..100 (fewest matching pods
// best); ignored nodes get 0.
func (pl PodTopologySpread) NormalizeScore(_ context.Context, state *framework.CycleState, _ *corev1.Pod, scores []framework.NodeScore) *framework.Status {
	v, ok := state.Read(preScoreKey)
	if !ok {
		return nil
	}
	s := v.(*scoreState)
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, sc := range scores {
		if s.ignored[sc.Name] {
			continue
		}
		lo, hi = min(lo, sc.Score), max(hi, sc.Score)
	}
	for i := range scores {
		switch {
		case s.ignored[scores[i].Name]:
			scores[i].Score = 0
		case hi == 0:
			scores[i].Score = framework.MaxNodeScore
		default:
			scores[i].Score = framework.MaxNodeScore * (hi + lo - scores[i].Score) / hi
		}
	}
	return nil
}
