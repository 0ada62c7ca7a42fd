// Package noderesources filters out nodes without room for a pod's
// requests (cpu, memory, ephemeral storage, pod count, extended resources)
// and scores emptier nodes higher (LeastAllocated) and balanced use of cpu
// and memory higher (BalancedAllocation).
package noderesources

import (
	"context"
	"math"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Names of the plugins in this package.
const (
	FitName      = "NodeResourcesFit"
	BalancedName = "NodeResourcesBalancedAllocation"
)

// Fit is the filter plus the LeastAllocated score.
type Fit struct{}

func (Fit) Name() string { return FitName }

func (Fit) Filter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) *framework.Status {
	req := framework.CycleRequests(state, pod)
	alloc, used := n.Allocatable, n.Requested
	var reasons []string
	if alloc.Pods > 0 && int64(len(n.Pods))+1 > alloc.Pods {
		reasons = append(reasons, "Too many pods")
	}
	if req.MilliCPU > 0 && used.MilliCPU+req.MilliCPU > alloc.MilliCPU {
		reasons = append(reasons, "Insufficient cpu")
	}
	if req.Memory > 0 && used.Memory+req.Memory > alloc.Memory {
		reasons = append(reasons, "Insufficient memory")
	}
	if req.EphemeralStorage > 0 && used.EphemeralStorage+req.EphemeralStorage > alloc.EphemeralStorage {
		reasons = append(reasons, "Insufficient ephemeral-storage")
	}
	for name, v := range req.Scalar {
		if v > 0 && used.Scalar[name]+v > alloc.Scalar[name] {
			reasons = append(reasons, "Insufficient "+string(name))
		}
	}
	if len(reasons) > 0 {
		return framework.NewStatus(framework.Unschedulable, reasons...)
	}
	return nil
}

// Score is LeastAllocated over cpu and memory: the share left free after
// placing the pod.
func (Fit) Score(_ context.Context, state *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) (int64, *framework.Status) {
	req := withDefaults(framework.CycleRequests(state, pod))
	free := func(used, want, capacity int64) int64 {
		if capacity <= 0 || used+want > capacity {
			return 0
		}
		return (capacity - used - want) * framework.MaxNodeScore / capacity
	}
	cpu := free(n.Requested.MilliCPU, req.MilliCPU, n.Allocatable.MilliCPU)
	mem := free(n.Requested.Memory, req.Memory, n.Allocatable.Memory)
	return (cpu + mem) / 2, nil
}

// withDefaults gives best-effort pods upstream's non-zero scoring requests
// (100m cpu, 200Mi memory), so they still spread.
func withDefaults(r framework.Resource) framework.Resource {
	if r.MilliCPU == 0 {
		r.MilliCPU = 100
	}
	if r.Memory == 0 {
		r.Memory = 200 << 20
	}
	return r
}

// Balanced prefers nodes where cpu and memory are used in equal shares.
type Balanced struct{}

func (Balanced) Name() string { return BalancedName }

func (Balanced) Score(_ context.Context, state *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) (int64, *framework.Status) {
	req := withDefaults(framework.CycleRequests(state, pod))
	if n.Allocatable.MilliCPU <= 0 || n.Allocatable.Memory <= 0 {
		return 0, nil
	}
	cpu := math.Min(1, float64(n.Requested.MilliCPU+req.MilliCPU)/float64(n.Allocatable.MilliCPU))
	mem := math.Min(1, float64(n.Requested.Memory+req.Memory)/float64(n.Allocatable.Memory))
	// The standard deviation of two fractions is half their difference.
	std := math.Abs(cpu-mem) / 2
	return int64((1 - std) * float64(framework.MaxNodeScore)), nil
}

var (
	_ framework.FilterPlugin = Fit{}
	_ framework.ScorePlugin  = Fit{}
	_ framework.ScorePlugin  = Balanced{}
)
