// Package nodeports filters out nodes where a host port the pod asks for
// is taken.
package nodeports

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodePorts"

// ErrReason is upstream's reason text.
const ErrReason = "node(s) didn't have free ports for the requested pod ports"

// NodePorts is the plugin.
type NodePorts struct{}

func (NodePorts) Name() string { return Name }

func (NodePorts) Filter(_ context.Context, _ *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) *framework.Status {
	for _, want := range framework.HostPorts(pod) {
		proto, rest, _ := strings.Cut(want, "/")
		ip, port, _ := strings.Cut(rest, "/")
		for used := range n.UsedPorts {
			uproto, urest, _ := strings.Cut(used, "/")
			uip, uport, _ := strings.Cut(urest, "/")
			if proto == uproto && port == uport && (ip == uip || ip == "0.0.0.0" || uip == "0.0.0.0") {
				return framework.NewStatus(framework.Unschedulable, ErrReason)
			}
		}
	}
	return nil
}

var _ framework.FilterPlugin = NodePorts{}
