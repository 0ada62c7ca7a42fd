package interpodaffinity

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

const preFilterKey = "PreFilter" + Name

// preFilterState holds, per topology domain, the counts Filter checks.
type preFilterState struct {
	pod *framework.PodInfo
	// existingAnti: existing pods whose required anti-affinity terms match
	// the incoming pod, by the domain of their node.
	existingAnti map[topologyPair]int64
	// affinity: existing pods matching all the pod's required affinity
	// terms, per term's domain; anti: pods matching each anti-affinity term.
	affinity, anti map[topologyPair]int64
	nsLabels       map[string]string // the incoming pod's namespace's labels
}

// Clone copies the counts, which AddPod and RemovePod change.
func (s *preFilterState) Clone() any {
	c := *s
	c.existingAnti, c.affinity, c.anti = maps.Clone(s.existingAnti), maps.Clone(s.affinity), maps.Clone(s.anti)
	return &c
}

// update counts pod p on node n in (mult 1) or out (mult -1) of the
// domains, as PreFilter counted the pods that were there.
func (s *preFilterState) update(p *corev1.Pod, n *framework.NodeInfo, mult int64) {
	nodeLabels := n.Node.Labels
	if len(nodeLabels) == 0 {
		return
	}
	if framework.HasPodAffinity(p) {
		ep := framework.NewPodInfo(p)
		for i := range ep.RequiredAntiAffinityTerms {
			t := &ep.RequiredAntiAffinityTerms[i]
			if v, ok := nodeLabels[t.TopologyKey]; ok && t.Matches(s.pod.Pod, s.nsLabels) {
				s.existingAnti[topologyPair{t.TopologyKey, v}] += mult
			}
		}
	}
	terms := s.pod.RequiredAffinityTerms
	if len(terms) > 0 && matchesAll(terms, p) {
		for i := range terms {
			if v, ok := nodeLabels[terms[i].TopologyKey]; ok {
				s.affinity[topologyPair{terms[i].TopologyKey, v}] += mult
			}
		}
	}
	for i := range s.pod.RequiredAntiAffinityTerms {
		t := &s.pod.RequiredAntiAffinityTerms[i]
		if v, ok := nodeLabels[t.TopologyKey]; ok && t.Matches(p, nil) {
			s.anti[topologyPair{t.TopologyKey, v}] += mult
		}
	}
	for _, m := range []map[topologyPair]int64{s.existingAnti, s.affinity, s.anti} {
		for k, v := range m {
			if v <= 0 {
				delete(m, k) // an emptied domain is as if never counted
			}
		}
	}
}

// AddPod counts a pod a what-if places on node.
func (pl InterPodAffinity) AddPod(_ context.Context, state *framework.CycleState, _, add *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	return updateState(state, add, node, 1)
}

// RemovePod uncounts a pod a what-if takes off node.
func (pl InterPodAffinity) RemovePod(_ context.Context, state *framework.CycleState, _, remove *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	return updateState(state, remove, node, -1)
}

func updateState(state *framework.CycleState, p *corev1.Pod, node *framework.NodeInfo, mult int64) *framework.Status {
	v, ok := state.Read(preFilterKey)
	if !ok {
		return nil // skipped this cycle
	}
	v.(*preFilterState).update(p, node, mult)
	return nil
}

// PreFilter counts, over every node, the pods the incoming pod's required
// terms match and the existing required anti-affinity terms that match the
// incoming pod. Skip when neither can apply.
func (pl InterPodAffinity) PreFilter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, snap *framework.Snapshot) *framework.Status {
	pi := framework.NewPodInfo(pod)
	if len(pi.RequiredAffinityTerms) == 0 && len(pi.RequiredAntiAffinityTerms) == 0 && snap.PodsWithRequiredAntiAffinity == 0 {
		return framework.NewStatus(framework.Skip)
	}
	resolveNamespaces(snap, pi)
	s := &preFilterState{pod: pi, existingAnti: map[topologyPair]int64{}, affinity: map[topologyPair]int64{}, anti: map[topologyPair]int64{}}
	// The namespace's labels, for existing pods' anti-affinity terms (here
	// and when a what-if adds a pod).
	nsLabels := snap.NamespaceLabels(pod.Namespace)
	s.nsLabels = nsLabels
	own := len(pi.RequiredAffinityTerms) > 0 || len(pi.RequiredAntiAffinityTerms) > 0
	for _, n := range snap.Nodes {
		nodeLabels := n.Node.Labels
		if len(nodeLabels) == 0 {
			continue // no topology label: no domain to count in
		}
		for _, ep := range n.PodsWithRequiredAntiAffinity {
			for i := range ep.RequiredAntiAffinityTerms {
				t := &ep.RequiredAntiAffinityTerms[i]
				if v, ok := nodeLabels[t.TopologyKey]; ok && t.Matches(pod, nsLabels) {
					s.existingAnti[topologyPair{t.TopologyKey, v}]++
				}
			}
		}
		if !own {
			continue
		}
		for _, p := range n.Pods {
			if len(pi.RequiredAffinityTerms) > 0 && matchesAll(pi.RequiredAffinityTerms, p) {
				for i := range pi.RequiredAffinityTerms {
					if v, ok := nodeLabels[pi.RequiredAffinityTerms[i].TopologyKey]; ok {
						s.affinity[topologyPair{pi.RequiredAffinityTerms[i].TopologyKey, v}]++
					}
				}
			}
			for i := range pi.RequiredAntiAffinityTerms {
				t := &pi.RequiredAntiAffinityTerms[i]
				if v, ok := nodeLabels[t.TopologyKey]; ok && t.Matches(p, nil) {
					s.anti[topologyPair{t.TopologyKey, v}]++
				}
			}
		}
	}
	state.Write(preFilterKey, s)
	return nil
}

// matchesAll reports whether p matches every term (namespaces resolved).
func matchesAll(terms []framework.AffinityTerm, p *corev1.Pod) bool {
	for i := range terms {
		if !terms[i].Matches(p, nil) {
			return false
		}
	}
	return true
}

// Filter checks the node's domains against the PreFilter counts, in
// upstream's order: the pod's affinity, its anti-affinity, then existing
// pods' anti-affinity.
func (pl InterPodAffinity) Filter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) *framework.Status {
	v, ok := state.Read(preFilterKey)
	if !ok {
		return framework.NewStatus(framework.Error, "interpodaffinity: no PreFilter state")
	}
	s := v.(*preFilterState)
	nodeLabels := n.Node.Labels
	if !s.satisfiesAffinity(nodeLabels) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonAffinityRulesNotMatch)
	}
	for i := range s.pod.RequiredAntiAffinityTerms {
		key := s.pod.RequiredAntiAffinityTerms[i].TopologyKey
		if v, ok := nodeLabels[key]; ok && s.anti[topologyPair{key, v}] > 0 {
			return framework.NewStatus(framework.Unschedulable, ErrReasonAntiAffinityRulesNotMatch)
		}
	}
	if len(s.existingAnti) > 0 {
		for k, v := range nodeLabels {
			if s.existingAnti[topologyPair{k, v}] > 0 {
				return framework.NewStatus(framework.Unschedulable, ErrReasonExistingAntiAffinityRulesNotMatch)
			}
		}
	}
	return nil
}

// satisfiesAffinity: the node must carry every term's topology key and
// each of its domains must hold a matching pod — except for the first pod
// of a group whose terms match the pod itself, which may go anywhere with
// the keys when no pod in the cluster matches yet.
func (s *preFilterState) satisfiesAffinity(nodeLabels map[string]string) bool {
	terms := s.pod.RequiredAffinityTerms
	found := true
	for i := range terms {
		v, ok := nodeLabels[terms[i].TopologyKey]
		if !ok {
			return false
		}
		if s.affinity[topologyPair{terms[i].TopologyKey, v}] <= 0 {
			found = false
		}
	}
	if found {
		return true
	}
	return len(s.affinity) == 0 && matchesAll(terms, s.pod.Pod)
}
