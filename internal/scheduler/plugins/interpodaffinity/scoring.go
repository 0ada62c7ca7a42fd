package interpodaffinity

import (
	"context"
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

const preScoreKey = "PreScore" + Name

// scoreState is the summed term weight per topology key and value.
type scoreState map[string]map[string]int64

func (s scoreState) add(t *framework.AffinityTerm, nodeLabels map[string]string, w int64) {
	v, ok := nodeLabels[t.TopologyKey]
	if !ok || w == 0 {
		return
	}
	m := s[t.TopologyKey]
	if m == nil {
		m = map[string]int64{}
		s[t.TopologyKey] = m
	}
	m[v] += w
}

// PreScore sums, per topology domain: the weights of the pod's preferred
// affinity (+) and anti-affinity (-) terms matched by pods there, and the
// weights of existing pods' preferred terms (and required affinity terms,
// at HardPodAffinityWeight) that the incoming pod matches. When the pod
// has no preferred terms only the pods with affinity terms are visited.
func (pl InterPodAffinity) PreScore(_ context.Context, state *framework.CycleState, pod *corev1.Pod, snap *framework.Snapshot, feasible []*framework.NodeInfo) *framework.Status {
	pi := framework.NewPodInfo(pod)
	own := len(pi.PreferredAffinityTerms) > 0 || len(pi.PreferredAntiAffinityTerms) > 0
	if len(feasible) == 0 || !own && snap.PodsWithAffinity == 0 {
		return framework.NewStatus(framework.Skip)
	}
	resolveNamespaces(snap, pi)
	var nsLabels labels.Set
	if snap.PodsWithAffinity > 0 {
		nsLabels = snap.NamespaceLabels(pod.Namespace)
	}
	s := scoreState{}
	for _, n := range snap.Nodes {
		nl := n.Node.Labels
		if len(nl) == 0 {
			continue
		}
		if own {
			for _, p := range n.Pods {
				for i := range pi.PreferredAffinityTerms {
					if t := &pi.PreferredAffinityTerms[i]; t.Matches(p, nil) {
						s.add(&t.AffinityTerm, nl, int64(t.Weight))
					}
				}
				for i := range pi.PreferredAntiAffinityTerms {
					if t := &pi.PreferredAntiAffinityTerms[i]; t.Matches(p, nil) {
						s.add(&t.AffinityTerm, nl, -int64(t.Weight))
					}
				}
			}
		}
		for _, ep := range n.PodsWithAffinity {
			if pl.HardPodAffinityWeight > 0 {
				for i := range ep.RequiredAffinityTerms {
					if t := &ep.RequiredAffinityTerms[i]; t.Matches(pod, nsLabels) {
						s.add(t, nl, int64(pl.HardPodAffinityWeight))
					}
				}
			}
			for i := range ep.PreferredAffinityTerms {
				if t := &ep.PreferredAffinityTerms[i]; t.Matches(pod, nsLabels) {
					s.add(&t.AffinityTerm, nl, int64(t.Weight))
				}
			}
			for i := range ep.PreferredAntiAffinityTerms {
				if t := &ep.PreferredAntiAffinityTerms[i]; t.Matches(pod, nsLabels) {
					s.add(&t.AffinityTerm, nl, -int64(t.Weight))
				}
			}
		}
	}
	if len(s) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preScoreKey, s)
	return nil
}

// Score is the sum of the node's domains' weights (may be negative; see
// NormalizeScore).
func (pl InterPodAffinity) Score(_ context.Context, state *framework.CycleState, _ *corev1.Pod, n *framework.NodeInfo) (int64, *framework.Status) {
	v, ok := state.Read(preScoreKey)
	if !ok {
		return 0, framework.NewStatus(framework.Error, "interpodaffinity: no PreScore state")
	}
	var score int64
	for key, byValue := range v.(scoreState) {
		if val, ok := n.Node.Labels[key]; ok {
			score += byValue[val]
		}
	}
	return score, nil
}

// NormalizeScore maps the raw sums linearly from [min, max] to 0..100.
func (pl InterPodAffinity) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *corev1.Pod, scores []framework.NodeScore) *framework.Status {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, s := range scores {
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	for i := range scores {
		if hi > lo {
			scores[i].Score = framework.MaxNodeScore * (scores[i].Score - lo) / (hi - lo)
		} else {
			scores[i].Score = 0
		}
	}
	return nil
}
