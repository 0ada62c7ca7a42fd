package plugins_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeaffinity"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodename"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeports"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/noderesources"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeunschedulable"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/tainttoleration"
)

// Builders in the style of kube-scheduler's testing wrappers.
type nodeB struct{ n *corev1.Node }

func makeNode(name string) *nodeB {
	return &nodeB{&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}}
}
func (b *nodeB) cap(cpu, mem string, pods int64) *nodeB {
	b.n.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods: *resource.NewQuantity(pods, resource.DecimalSI)}
	return b
}
func (b *nodeB) label(k, v string) *nodeB { b.n.Labels[k] = v; return b }
func (b *nodeB) taint(k, v string, e corev1.TaintEffect) *nodeB {
	b.n.Spec.Taints = append(b.n.Spec.Taints, corev1.Taint{Key: k, Value: v, Effect: e})
	return b
}
func (b *nodeB) unschedulable() *nodeB { b.n.Spec.Unschedulable = true; return b }

type podB struct{ p *corev1.Pod }

func makePod() *podB {
	return &podB{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}}
}
func (b *podB) req(cpu, mem string) *podB {
	b.p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
	return b
}
func (b *podB) initReq(cpu string) *podB {
	b.p.Spec.InitContainers = append(b.p.Spec.InitContainers, corev1.Container{Name: "init",
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}})
	return b
}
func (b *podB) nodeName(n string) *podB    { b.p.Spec.NodeName = n; return b }
func (b *podB) selector(k, v string) *podB { b.p.Spec.NodeSelector = map[string]string{k: v}; return b }
func (b *podB) tolerate(t corev1.Toleration) *podB {
	b.p.Spec.Tolerations = append(b.p.Spec.Tolerations, t)
	return b
}
func (b *podB) hostPort(p int32) *podB {
	b.p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: p, HostPort: p, Protocol: corev1.ProtocolTCP}}
	return b
}

func TestFilters(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		plugin framework.FilterPlugin
		pod    *corev1.Pod
		node   *corev1.Node
		placed []*corev1.Pod
		code   framework.Code
		reason string
	}{
		{"nodename match", nodename.NodeName{}, makePod().nodeName("n1").p, makeNode("n1").n, nil, framework.Success, ""},
		{"nodename mismatch", nodename.NodeName{}, makePod().nodeName("n2").p, makeNode("n1").n, nil, framework.UnschedulableAndUnresolvable, nodename.ErrReason},
		{"cordoned", nodeunschedulable.NodeUnschedulable{}, makePod().p, makeNode("n").unschedulable().n, nil, framework.UnschedulableAndUnresolvable, nodeunschedulable.ErrReason},
		{"cordoned but tolerated", nodeunschedulable.NodeUnschedulable{}, makePod().tolerate(corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists}).p,
			makeNode("n").unschedulable().n, nil, framework.Success, ""},
		{"untolerated taint", tainttoleration.TaintToleration{}, makePod().p, makeNode("n").taint("k", "v", corev1.TaintEffectNoSchedule).n, nil,
			framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {k: v}"},
		{"tolerated by Exists", tainttoleration.TaintToleration{}, makePod().tolerate(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists}).p,
			makeNode("n").taint("k", "v", corev1.TaintEffectNoExecute).n, nil, framework.Success, ""},
		{"wrong value", tainttoleration.TaintToleration{}, makePod().tolerate(corev1.Toleration{Key: "k", Value: "x"}).p,
			makeNode("n").taint("k", "v", corev1.TaintEffectNoSchedule).n, nil, framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {k: v}"},
		{"PreferNoSchedule does not filter", tainttoleration.TaintToleration{}, makePod().p, makeNode("n").taint("k", "v", corev1.TaintEffectPreferNoSchedule).n, nil, framework.Success, ""},
		{"selector match", nodeaffinity.NodeAffinity{}, makePod().selector("zone", "a").p, makeNode("n").label("zone", "a").n, nil, framework.Success, ""},
		{"selector mismatch", nodeaffinity.NodeAffinity{}, makePod().selector("zone", "a").p, makeNode("n").label("zone", "b").n, nil, framework.UnschedulableAndUnresolvable, nodeaffinity.ErrReason},
		{"fits", noderesources.Fit{}, makePod().req("1", "1Gi").p, makeNode("n").cap("2", "2Gi", 10).n, nil, framework.Success, ""},
		{"insufficient cpu", noderesources.Fit{}, makePod().req("1", "1Gi").p, makeNode("n").cap("2", "2Gi", 10).n,
			[]*corev1.Pod{makePod().req("1500m", "0").p}, framework.Unschedulable, "Insufficient cpu"},
		{"init container counts", noderesources.Fit{}, makePod().req("100m", "0").initReq("3").p, makeNode("n").cap("2", "2Gi", 10).n, nil, framework.Unschedulable, "Insufficient cpu"},
		{"too many pods", noderesources.Fit{}, makePod().p, makeNode("n").cap("2", "2Gi", 1).n, []*corev1.Pod{makePod().p}, framework.Unschedulable, "Too many pods"},
		{"host port taken", nodeports.NodePorts{}, makePod().hostPort(80).p, makeNode("n").n, []*corev1.Pod{makePod().hostPort(80).p}, framework.Unschedulable, nodeports.ErrReason},
		{"host port free", nodeports.NodePorts{}, makePod().hostPort(81).p, makeNode("n").n, []*corev1.Pod{makePod().hostPort(80).p}, framework.Success, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.plugin.Filter(ctx, nil, tt.pod, framework.NewNodeInfo(tt.node, tt.placed...))
			if tt.code == framework.Success {
				if !st.IsSuccess() {
					t.Fatalf("rejected: %+v", st)
				}
				return
			}
			if st.IsSuccess() || st.Code != tt.code || len(st.Reasons) == 0 || st.Reasons[0] != tt.reason {
				t.Fatalf("status %+v, want code %d reason %q", st, tt.code, tt.reason)
			}
		})
	}
}

func TestScores(t *testing.T) {
	ctx := context.Background()
	empty := framework.NewNodeInfo(makeNode("empty").cap("4", "8Gi", 110).n)
	busy := framework.NewNodeInfo(makeNode("busy").cap("4", "8Gi", 110).n, makePod().req("3", "6Gi").p)
	p := makePod().req("500m", "1Gi").p
	se, _ := noderesources.Fit{}.Score(ctx, nil, p, empty)
	sb, _ := noderesources.Fit{}.Score(ctx, nil, p, busy)
	if se <= sb {
		t.Errorf("LeastAllocated: empty %d <= busy %d", se, sb)
	}
	balanced := framework.NewNodeInfo(makeNode("bal").cap("4", "8Gi", 110).n, makePod().req("2", "4Gi").p)
	skewed := framework.NewNodeInfo(makeNode("skew").cap("4", "8Gi", 110).n, makePod().req("3500m", "0").p)
	bb, _ := noderesources.Balanced{}.Score(ctx, nil, p, balanced)
	bs, _ := noderesources.Balanced{}.Score(ctx, nil, p, skewed)
	if bb <= bs {
		t.Errorf("BalancedAllocation: balanced %d <= skewed %d", bb, bs)
	}
	soft := framework.NewNodeInfo(makeNode("soft").taint("k", "v", corev1.TaintEffectPreferNoSchedule).n)
	clean := framework.NewNodeInfo(makeNode("clean").n)
	ts, _ := tainttoleration.TaintToleration{}.Score(ctx, nil, p, soft)
	tc, _ := tainttoleration.TaintToleration{}.Score(ctx, nil, p, clean)
	if ts >= tc {
		t.Errorf("TaintToleration: PreferNoSchedule node %d >= clean %d", ts, tc)
	}
	pref := makePod().p
	pref.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
		Weight: 10, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}}}}}
	za, _ := nodeaffinity.NodeAffinity{}.Score(ctx, nil, pref, framework.NewNodeInfo(makeNode("a").label("zone", "a").n))
	zb, _ := nodeaffinity.NodeAffinity{}.Score(ctx, nil, pref, framework.NewNodeInfo(makeNode("b").label("zone", "b").n))
	if za != framework.MaxNodeScore || zb != 0 {
		t.Errorf("NodeAffinity preferred: %d / %d", za, zb)
	}
}

func TestDiagnosisMessage(t *testing.T) {
	d := framework.Diagnosis{
		"a": framework.NewStatus(framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {k: v}"),
		"b": framework.NewStatus(framework.Unschedulable, "Insufficient cpu"),
		"c": framework.NewStatus(framework.Unschedulable, "Insufficient cpu", "Insufficient memory"),
	}
	want := "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu."
	if got := d.Message(3); got != want {
		t.Errorf("message %q\nwant    %q", got, want)
	}
}
