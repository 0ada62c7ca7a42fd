// Package tainttoleration filters out nodes with NoSchedule/NoExecute
// taints the pod does not tolerate and prefers nodes with fewer
// untolerated PreferNoSchedule taints.
package tainttoleration

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "TaintToleration"

// TaintToleration is the plugin.
type TaintToleration struct{}

func (TaintToleration) Name() string { return Name }

func tolerated(t *corev1.Taint, tols []corev1.Toleration) bool { return framework.ToleratedBy(t, tols) }

func (TaintToleration) Filter(_ context.Context, _ *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) *framework.Status {
	for i := range n.Node.Spec.Taints {
		t := &n.Node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(t, pod.Spec.Tolerations) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable,
				fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value))
		}
	}
	return nil
}

// Score gives fewer untolerated PreferNoSchedule taints a higher score.
func (TaintToleration) Score(_ context.Context, _ *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) (int64, *framework.Status) {
	bad := 0
	for i := range n.Node.Spec.Taints {
		t := &n.Node.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !tolerated(t, pod.Spec.Tolerations) {
			bad++
		}
	}
	return framework.MaxNodeScore / int64(1+bad), nil
}

var (
	_ framework.FilterPlugin = TaintToleration{}
	_ framework.ScorePlugin  = TaintToleration{}
)
