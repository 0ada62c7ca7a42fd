// Package schedtest has builders for pods and nodes in the style of
// kube-scheduler's testing wrappers (MakePod().Node("n1").Obj()) and
// helpers that run a plugin's extension points over a snapshot as one
// scheduling cycle does. It is for tests only.
package schedtest

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// PodWrapper builds a pod.
type PodWrapper struct{ corev1.Pod }

// MakePod starts a pod named "p" in namespace "default".
func MakePod() *PodWrapper {
	return &PodWrapper{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}}
}

// Obj returns the pod.
func (p *PodWrapper) Obj() *corev1.Pod { return &p.Pod }

// Name sets the name.
func (p *PodWrapper) Name(n string) *PodWrapper { p.Pod.Name = n; return p }

// Namespace sets the namespace.
func (p *PodWrapper) Namespace(ns string) *PodWrapper { p.Pod.Namespace = ns; return p }

// Label adds a label.
func (p *PodWrapper) Label(k, v string) *PodWrapper {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[k] = v
	return p
}

// Node places the pod on node n.
func (p *PodWrapper) Node(n string) *PodWrapper { p.Spec.NodeName = n; return p }

// NodeSelector adds a nodeSelector entry.
func (p *PodWrapper) NodeSelector(k, v string) *PodWrapper {
	if p.Spec.NodeSelector == nil {
		p.Spec.NodeSelector = map[string]string{}
	}
	p.Spec.NodeSelector[k] = v
	return p
}

// Priority sets spec.priority.
func (p *PodWrapper) Priority(v int32) *PodWrapper { p.Spec.Priority = &v; return p }

// CPU sets the container's cpu request, e.g. "500m".
func (p *PodWrapper) CPU(q string) *PodWrapper {
	p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}
	return p
}

// StartTime sets status.startTime.
func (p *PodWrapper) StartTime(t time.Time) *PodWrapper {
	st := metav1.NewTime(t)
	p.Status.StartTime = &st
	return p
}

// UID sets the UID.
func (p *PodWrapper) UID(uid string) *PodWrapper { p.Pod.UID = types.UID(uid); return p }

// Terminating marks the pod as being deleted.
func (p *PodWrapper) Terminating() *PodWrapper {
	now := metav1.Now()
	p.DeletionTimestamp = &now
	return p
}

// OwnedBy sets the pod's controller.
func (p *PodWrapper) OwnedBy(apiVersion, kind, name string) *PodWrapper {
	yes := true
	p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, Controller: &yes})
	return p
}

func (p *PodWrapper) affinity() *corev1.Affinity {
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &corev1.Affinity{}
	}
	return p.Spec.Affinity
}

func (p *PodWrapper) podAffinity() *corev1.PodAffinity {
	a := p.affinity()
	if a.PodAffinity == nil {
		a.PodAffinity = &corev1.PodAffinity{}
	}
	return a.PodAffinity
}

func (p *PodWrapper) podAntiAffinity() *corev1.PodAntiAffinity {
	a := p.affinity()
	if a.PodAntiAffinity == nil {
		a.PodAntiAffinity = &corev1.PodAntiAffinity{}
	}
	return a.PodAntiAffinity
}

// RequiredAffinity adds a required pod affinity term.
func (p *PodWrapper) RequiredAffinity(t corev1.PodAffinityTerm) *PodWrapper {
	a := p.podAffinity()
	a.RequiredDuringSchedulingIgnoredDuringExecution = append(a.RequiredDuringSchedulingIgnoredDuringExecution, t)
	return p
}

// RequiredAntiAffinity adds a required pod anti-affinity term.
func (p *PodWrapper) RequiredAntiAffinity(t corev1.PodAffinityTerm) *PodWrapper {
	a := p.podAntiAffinity()
	a.RequiredDuringSchedulingIgnoredDuringExecution = append(a.RequiredDuringSchedulingIgnoredDuringExecution, t)
	return p
}

// PreferredAffinity adds a preferred pod affinity term.
func (p *PodWrapper) PreferredAffinity(w int32, t corev1.PodAffinityTerm) *PodWrapper {
	a := p.podAffinity()
	a.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.WeightedPodAffinityTerm{Weight: w, PodAffinityTerm: t})
	return p
}

// PreferredAntiAffinity adds a preferred pod anti-affinity term.
func (p *PodWrapper) PreferredAntiAffinity(w int32, t corev1.PodAffinityTerm) *PodWrapper {
	a := p.podAntiAffinity()
	a.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.WeightedPodAffinityTerm{Weight: w, PodAffinityTerm: t})
	return p
}

// Spread adds a topology spread constraint.
func (p *PodWrapper) Spread(c corev1.TopologySpreadConstraint) *PodWrapper {
	p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
	return p
}

// SpreadConstraint adds a constraint with the common fields.
func (p *PodWrapper) SpreadConstraint(maxSkew int32, key string, when corev1.UnsatisfiableConstraintAction, sel *metav1.LabelSelector) *PodWrapper {
	return p.Spread(corev1.TopologySpreadConstraint{MaxSkew: maxSkew, TopologyKey: key, WhenUnsatisfiable: when, LabelSelector: sel})
}

// Sel is a label selector matching k=v.
func Sel(k, v string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
}

// Term is a pod affinity term over topologyKey selecting pods with k=v.
func Term(topologyKey, k, v string) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{TopologyKey: topologyKey, LabelSelector: Sel(k, v)}
}

// NodeWrapper builds a node.
type NodeWrapper struct{ corev1.Node }

// MakeNode starts a node with the given name, labelled with it as
// kubernetes.io/hostname (as kubelets do).
func MakeNode(name string) *NodeWrapper {
	return &NodeWrapper{corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}}
}

// Obj returns the node.
func (n *NodeWrapper) Obj() *corev1.Node { return &n.Node }

// Label adds a label.
func (n *NodeWrapper) Label(k, v string) *NodeWrapper { n.Labels[k] = v; return n }

// Taint adds a taint.
func (n *NodeWrapper) Taint(k, v string, e corev1.TaintEffect) *NodeWrapper {
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: k, Value: v, Effect: e})
	return n
}

// Snapshot places pods on nodes by spec.nodeName.
func Snapshot(nodes []*corev1.Node, pods []*corev1.Pod) *framework.Snapshot {
	infos := make([]*framework.NodeInfo, len(nodes))
	for i, n := range nodes {
		infos[i] = framework.NewNodeInfo(n)
		for _, p := range pods {
			if p.Spec.NodeName == n.Name {
				infos[i].AddPod(p)
			}
		}
	}
	return framework.NewSnapshot(infos...)
}

// Filter runs p's PreFilter and then its Filter on every node of snap, as
// a cycle does. Every node maps to its status (nil when it passes); a
// PreFilter Skip passes every node.
func Filter(p framework.PreFilterPlugin, pod *corev1.Pod, snap *framework.Snapshot) map[string]*framework.Status {
	ctx := context.Background()
	state := framework.NewCycleState()
	out := map[string]*framework.Status{}
	st := p.PreFilter(ctx, state, pod, snap)
	for _, n := range snap.Nodes {
		switch {
		case st.IsSkip():
			out[n.Node.Name] = nil
		case !st.IsSuccess():
			out[n.Node.Name] = st
		default:
			out[n.Node.Name] = p.Filter(ctx, state, pod, n)
		}
	}
	return out
}

// Score runs p's PreScore, Score and (if any) NormalizeScore with every
// node of snap feasible; a Skip scores every node 0.
func Score(p framework.PreScorePlugin, pod *corev1.Pod, snap *framework.Snapshot) map[string]int64 {
	ctx := context.Background()
	state := framework.NewCycleState()
	out := map[string]int64{}
	if st := p.PreScore(ctx, state, pod, snap, snap.Nodes); !st.IsSuccess() {
		for _, n := range snap.Nodes {
			out[n.Node.Name] = 0
		}
		return out
	}
	scores := make([]framework.NodeScore, len(snap.Nodes))
	for i, n := range snap.Nodes {
		v, _ := p.Score(ctx, state, pod, n)
		scores[i] = framework.NodeScore{Name: n.Node.Name, Score: v}
	}
	if norm, ok := p.(framework.ScoreNormalizer); ok {
		norm.NormalizeScore(ctx, state, pod, scores)
	}
	for _, s := range scores {
		out[s.Name] = s.Score
	}
	return out
}
