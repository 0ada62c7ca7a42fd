// Package nodeaffinity applies a pod's nodeSelector and node affinity:
// required terms filter, preferred terms score.
package nodeaffinity

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodeAffinity"

// ErrReason is upstream's reason text.
const ErrReason = "node(s) didn't match Pod's node affinity/selector"

// NodeAffinity is the plugin.
type NodeAffinity struct{}

func (NodeAffinity) Name() string { return Name }

func (NodeAffinity) Filter(_ context.Context, _ *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) *framework.Status {
	if len(pod.Spec.NodeSelector) > 0 && !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(n.Node.Labels)) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReason)
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		sel, err := nodeaffinity.NewNodeSelector(a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
		if err != nil {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, err.Error())
		}
		if !sel.Match(n.Node) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReason)
		}
	}
	return nil
}

// Score sums the weights of the preferred terms the node matches, scaled
// to 0..100.
func (NodeAffinity) Score(_ context.Context, _ *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) (int64, *framework.Status) {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		return 0, nil
	}
	terms, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	if err != nil {
		return 0, framework.NewStatus(framework.Error, err.Error())
	}
	var total int64
	for _, t := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		total += int64(t.Weight)
	}
	if total == 0 {
		return 0, nil
	}
	return terms.Score(n.Node) * framework.MaxNodeScore / total, nil
}

var (
	_ framework.FilterPlugin = NodeAffinity{}
	_ framework.ScorePlugin  = NodeAffinity{}
)
