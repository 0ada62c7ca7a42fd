package framework

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Code is a plugin verdict.
type Code int

const (
	// Success: the node passes.
	Success Code = iota
	// Unschedulable: the node does not fit; another node or a cluster
	// change may help.
	Unschedulable
	// UnschedulableAndUnresolvable: no change to other pods will help on
	// this node (e.g. node selector mismatch).
	UnschedulableAndUnresolvable
	// Error: the plugin failed.
	Error
	// Skip: from PreFilter or PreScore, the plugin has nothing to do for
	// this pod in this cycle; its Filter or Score is not called.
	Skip
)

// Status is a plugin's result with the reasons shown to users.
type Status struct {
	Code    Code
	Reasons []string
}

// NewStatus builds a status.
func NewStatus(code Code, reasons ...string) *Status { return &Status{Code: code, Reasons: reasons} }

// IsSuccess reports whether s is nil or Success.
func (s *Status) IsSuccess() bool { return s == nil || s.Code == Success }

// IsSkip reports whether s asks to skip the plugin for this cycle.
func (s *Status) IsSkip() bool { return s != nil && s.Code == Skip }

// Plugin is anything with a name.
type Plugin interface{ Name() string }

// FilterPlugin rules nodes out. state holds what the plugin's PreFilter
// computed for this cycle (nothing for plugins without one).
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, state *CycleState, pod *corev1.Pod, node *NodeInfo) *Status
}

// PreFilterPlugin runs once per scheduling cycle, before any Filter, over
// the whole snapshot: plugins whose verdict depends on other nodes (pods by
// topology domain) precompute it here into state. Returning Skip means the
// plugin's Filter has nothing to check for this pod; any other non-success
// rejects the pod on every node.
type PreFilterPlugin interface {
	FilterPlugin
	PreFilter(ctx context.Context, state *CycleState, pod *corev1.Pod, snap *Snapshot) *Status
}

// PreFilterExtensions is a PreFilterPlugin whose state depends on the
// pods placed on other nodes: when a what-if adds a pod to a node or
// removes one (preemption's victims, nominated pods), AddPod and RemovePod
// update the cycle state as a PreFilter over the changed snapshot would.
// node is the NodeInfo the pod is added to or removed from.
type PreFilterExtensions interface {
	PreFilterPlugin
	AddPod(ctx context.Context, state *CycleState, pod, add *corev1.Pod, node *NodeInfo) *Status
	RemovePod(ctx context.Context, state *CycleState, pod, remove *corev1.Pod, node *NodeInfo) *Status
}

// PreBindPlugin runs after a node is chosen and before the pod is bound
// to it, with a client for the writes it needs (volume binding annotates
// claims). A failure fails the binding; the pod is retried.
type PreBindPlugin interface {
	Plugin
	PreBind(ctx context.Context, client kubernetes.Interface, l Listers, pod *corev1.Pod, node string) *Status
}

// ScorePlugin ranks the nodes that passed the filters, 0..MaxNodeScore.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, state *CycleState, pod *corev1.Pod, node *NodeInfo) (int64, *Status)
}

// PreScorePlugin runs once per cycle before its Score, with the snapshot
// and the nodes that passed the filters. Skip means every node scores 0.
type PreScorePlugin interface {
	ScorePlugin
	PreScore(ctx context.Context, state *CycleState, pod *corev1.Pod, snap *Snapshot, feasible []*NodeInfo) *Status
}

// ScoreNormalizer is a ScorePlugin whose raw scores are relative (counts,
// weights) and are mapped to 0..MaxNodeScore once all nodes are scored.
type ScoreNormalizer interface {
	ScorePlugin
	NormalizeScore(ctx context.Context, state *CycleState, pod *corev1.Pod, scores []NodeScore) *Status
}

// NodeScore is one node's score from one plugin.
type NodeScore struct {
	Name  string
	Score int64
}

// MaxNodeScore is the best score a plugin gives.
const MaxNodeScore int64 = 100

// WeightedScorer is a score plugin and the weight of its score in the sum.
type WeightedScorer struct {
	ScorePlugin
	Weight int64
}

// Profile is the set of plugins a scheduler runs. A filter that is also a
// PreFilterPlugin gets its PreFilter called; likewise PreScore for scorers.
type Profile struct {
	Filters []FilterPlugin
	Scorers []WeightedScorer
}

// Diagnosis collects, per node, why a pod did not fit.
type Diagnosis map[string]*Status

// Message renders upstream's summary, e.g. "0/3 nodes are available: 1
// node(s) had untolerated taint {k: v}, 2 Insufficient cpu."
func (d Diagnosis) Message(total int) string {
	counts := map[string]int{}
	for _, st := range d {
		for _, r := range st.Reasons {
			counts[r]++
		}
	}
	reasons := make([]string, 0, len(counts))
	for r, n := range counts {
		reasons = append(reasons, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(reasons)
	msg := fmt.Sprintf("0/%d nodes are available", total)
	if len(reasons) > 0 {
		msg += ": " + strings.Join(reasons, ", ")
	}
	return msg + "."
}

// Tolerates reports whether toleration tol tolerates taint, with
// upstream's matching rules (empty effect matches every effect; empty key
// with Exists matches every taint; Equal compares values).
func Tolerates(tol *corev1.Toleration, taint *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != taint.Effect {
		return false
	}
	if tol.Key != taint.Key && !(tol.Key == "" && tol.Operator == corev1.TolerationOpExists) {
		return false
	}
	switch tol.Operator {
	case corev1.TolerationOpExists:
		return true
	case "", corev1.TolerationOpEqual:
		return tol.Value == taint.Value
	}
	return false
}

// ToleratedBy reports whether any of tols tolerates taint.
func ToleratedBy(taint *corev1.Taint, tols []corev1.Toleration) bool {
	for i := range tols {
		if Tolerates(&tols[i], taint) {
			return true
		}
	}
	return false
}
