// Package podtopologyspread applies topologySpreadConstraints, as
// kube-scheduler's PodTopologySpread plugin: DoNotSchedule constraints
// filter (a node may not raise its domain's matching-pod count more than
// maxSkew above the least-loaded domain), ScheduleAnyway constraints score
// (fewer matching pods in the node's domains is better). Pods without
// constraints get upstream's system defaults (hostname maxSkew 3, zone
// maxSkew 5, ScheduleAnyway) over the labels of the Services, controller
// and sets that select them. Counts per domain are computed once per cycle
// over the whole snapshot in PreFilter/PreScore.
package podtopologyspread

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "PodTopologySpread"

// Upstream's reason texts.
const (
	ErrReasonConstraintsNotMatch = "node(s) didn't match pod topology spread constraints"
	ErrReasonNodeLabelNotMatch   = ErrReasonConstraintsNotMatch + " (missing required label)"
)

// PodTopologySpread is the plugin. SystemDefaulted applies upstream's
// system default constraints to pods that have none.
type PodTopologySpread struct {
	SystemDefaulted bool
}

// New returns the plugin with upstream's defaults.
func New() PodTopologySpread { return PodTopologySpread{SystemDefaulted: true} }

func (PodTopologySpread) Name() string { return Name }

// constraint is a parsed TopologySpreadConstraint with defaults applied.
type constraint struct {
	maxSkew            int32
	topologyKey        string
	selector           labels.Selector
	matcher            framework.LabelMatcher // selector, compiled
	minDomains         int32
	nodeAffinityPolicy corev1.NodeInclusionPolicy
	nodeTaintsPolicy   corev1.NodeInclusionPolicy
}

// constraintsOf parses pod's constraints with the given action.
func constraintsOf(pod *corev1.Pod, action corev1.UnsatisfiableConstraintAction) ([]constraint, error) {
	var out []constraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			return nil, fmt.Errorf("topology spread constraint on %s: %w", c.TopologyKey, err)
		}
		pc := constraint{maxSkew: c.MaxSkew, topologyKey: c.TopologyKey, minDomains: 1,
			selector:           framework.WithMatchLabelKeys(sel, pod, c.MatchLabelKeys),
			nodeAffinityPolicy: corev1.NodeInclusionPolicyHonor, nodeTaintsPolicy: corev1.NodeInclusionPolicyIgnore}
		if c.MinDomains != nil {
			pc.minDomains = *c.MinDomains
		}
		if c.NodeAffinityPolicy != nil {
			pc.nodeAffinityPolicy = *c.NodeAffinityPolicy
		}
		if c.NodeTaintsPolicy != nil {
			pc.nodeTaintsPolicy = *c.NodeTaintsPolicy
		}
		pc.matcher = framework.NewLabelMatcher(pc.selector)
		out = append(out, pc)
	}
	return out, nil
}

// includes reports whether node's pods count toward the constraint's
// domains: with Honor policies only nodes matching the pod's required node
// affinity and without untolerated NoSchedule/NoExecute taints do.
func (c *constraint) includes(pod *corev1.Pod, node *corev1.Node, required nodeaffinity.RequiredNodeAffinity) bool {
	if c.nodeAffinityPolicy == corev1.NodeInclusionPolicyHonor {
		if ok, err := required.Match(node); err != nil || !ok {
			return false
		}
	}
	if c.nodeTaintsPolicy == corev1.NodeInclusionPolicyHonor {
		for i := range node.Spec.Taints {
			t := &node.Spec.Taints[i]
			if (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) && !framework.ToleratedBy(t, pod.Spec.Tolerations) {
				return false
			}
		}
	}
	return true
}

// hasAllKeys reports whether node carries every constraint's topology key.
func hasAllKeys(node *corev1.Node, cs []constraint) bool {
	for i := range cs {
		if _, ok := node.Labels[cs[i].topologyKey]; !ok {
			return false
		}
	}
	return true
}

// countMatching counts the pods in namespace ns matching sel, leaving out
// terminating ones, as upstream does.
func countMatching(pods []*corev1.Pod, m *framework.LabelMatcher, ns string) int {
	n := 0
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Namespace != ns {
			continue
		}
		if m.Matches(p.Labels) {
			n++
		}
	}
	return n
}

var (
	_ framework.PreFilterPlugin     = PodTopologySpread{}
	_ framework.PreFilterExtensions = PodTopologySpread{}
	_ framework.PreScorePlugin      = PodTopologySpread{}
	_ framework.ScoreNormalizer     = PodTopologySpread{}
)
