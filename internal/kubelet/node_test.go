package kubelet

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/cri"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestNodeObjectLabelsAndTaints(t *testing.T) {
	k := testKubelet()
	k.cfg.NodeLabels = map[string]string{"pool": "a", corev1.LabelHostname: "alias"}
	k.cfg.RegisterWithTaints = []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}}
	nd := k.nodeObject()
	if nd.Labels["pool"] != "a" || nd.Labels[corev1.LabelOSStable] == "" {
		t.Errorf("labels %v: want pool=a and the default labels", nd.Labels)
	}
	// As upstream's initialNode: --node-labels win over the defaults.
	if nd.Labels[corev1.LabelHostname] != "alias" {
		t.Errorf("hostname label %q, want the flag's alias", nd.Labels[corev1.LabelHostname])
	}
	want := []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}, {Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}
	if !reflect.DeepEqual(nd.Spec.Taints, want) {
		t.Errorf("taints %v, want %v (the flag's, then upstream's not-ready)", nd.Spec.Taints, want)
	}
	// A not-ready taint given as a flag is not registered twice.
	k.cfg.RegisterWithTaints = []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}
	if nd := k.nodeObject(); len(nd.Spec.Taints) != 1 {
		t.Errorf("taints %v, want the not-ready taint once", nd.Spec.Taints)
	}
}

// statusRuntime answers CRI Status with conds (or err); the other calls are
// not used by the node status code.
type statusRuntime struct {
	runtimeapi.RuntimeServiceClient
	conds []*runtimeapi.RuntimeCondition
	err   error
}

func (r *statusRuntime) Status(context.Context, *runtimeapi.StatusRequest, ...grpc.CallOption) (*runtimeapi.StatusResponse, error) {
	if r.err != nil {
		return nil, r.err
	}
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: r.conds}}, nil
}

func runtimeConds(runtimeOK, networkOK bool) []*runtimeapi.RuntimeCondition {
	c := []*runtimeapi.RuntimeCondition{{Type: runtimeapi.RuntimeReady, Status: runtimeOK}, {Type: runtimeapi.NetworkReady, Status: networkOK}}
	if !networkOK {
		c[1].Reason, c[1].Message = "NetworkPluginNotReady", "Network plugin returns error: cni plugin not initialized"
	}
	if !runtimeOK {
		c[0].Reason, c[0].Message = "ContainerdNotReady", "not started"
	}
	return c
}

func TestReadyCondition(t *testing.T) {
	for _, tt := range []struct {
		name   string
		conds  []*runtimeapi.RuntimeCondition
		err    error
		status corev1.ConditionStatus
		msg    string
	}{
		{"ready", runtimeConds(true, true), nil, corev1.ConditionTrue, "kubelet is posting ready status"},
		{"no cni config", runtimeConds(true, false), nil, corev1.ConditionFalse,
			"container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"},
		{"both", runtimeConds(false, false), nil, corev1.ConditionFalse,
			"container runtime not ready: RuntimeReady=false reason:ContainerdNotReady message:not started, container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"},
		{"no conditions", nil, nil, corev1.ConditionFalse,
			"container runtime not ready: RuntimeReady condition missing, container runtime network not ready: NetworkReady condition missing"},
		{"runtime down", nil, errors.New("connection refused"), corev1.ConditionFalse, "container runtime is down: connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var st *runtimeapi.RuntimeStatus
			if tt.err == nil {
				st = &runtimeapi.RuntimeStatus{Conditions: tt.conds}
			}
			c := readyCondition(st, tt.err)
			wantReason := "KubeletReady"
			if tt.status != corev1.ConditionTrue {
				wantReason = "KubeletNotReady"
			}
			if c.Type != corev1.NodeReady || c.Status != tt.status || c.Reason != wantReason || c.Message != tt.msg {
				t.Errorf("got %s=%s %s %q, want Ready=%s %s %q", c.Type, c.Status, c.Reason, c.Message, tt.status, wantReason, tt.msg)
			}
		})
	}
}

// TestRegisterNotReadyThenReady: a node registered before its pod network
// is configured is created (one write, status included) NotReady with the
// not-ready taint; once the runtime's network is ready, the next status
// says Ready with a new transition time and keeps the other conditions'.
func TestRegisterNotReadyThenReady(t *testing.T) {
	client := fake.NewClientset()
	rt := &statusRuntime{conds: runtimeConds(true, false)}
	k := testKubelet()
	k.cfg.Client, k.log, k.rt = client, k.cfg.Logger, &cri.Client{Runtime: rt}
	ctx := context.Background()
	if err := k.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	var nodeWrites []string
	for _, a := range client.Actions() {
		if a.GetResource().Resource == "nodes" && a.GetVerb() != "get" {
			nodeWrites = append(nodeWrites, a.GetVerb()+"/"+a.GetSubresource())
		}
	}
	if !reflect.DeepEqual(nodeWrites, []string{"create/"}) {
		t.Errorf("node writes %v, want one create carrying the status", nodeWrites)
	}
	nd, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	ready := readyOf(nd)
	if ready.Status != corev1.ConditionFalse || ready.Reason != "KubeletNotReady" || !strings.Contains(ready.Message, "NetworkReady=false") {
		t.Errorf("registered Ready condition %+v, want False/KubeletNotReady naming NetworkReady", ready)
	}
	if !slices.ContainsFunc(nd.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeNotReady && t.Effect == corev1.TaintEffectNoSchedule
	}) {
		t.Errorf("taints %v, want node.kubernetes.io/not-ready:NoSchedule", nd.Spec.Taints)
	}
	if len(nd.Status.Capacity) == 0 || nd.Status.NodeInfo.ContainerRuntimeVersion == "" {
		t.Errorf("registered status lacks capacity or node info: %+v", nd.Status)
	}

	later := t0.Add(time.Minute)
	k.now = func() time.Time { return later }
	rt.conds = runtimeConds(true, true)
	if err := k.postStatus(ctx, nd); err != nil {
		t.Fatal(err)
	}
	nd, _ = client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	ready = readyOf(nd)
	if ready.Status != corev1.ConditionTrue || ready.Reason != "KubeletReady" || !ready.LastTransitionTime.Time.Equal(later) {
		t.Errorf("Ready after the network came up: %+v, want True/KubeletReady, transition at %v", ready, later)
	}
	for _, c := range nd.Status.Conditions {
		if c.Type != corev1.NodeReady && (!c.LastTransitionTime.Time.Equal(t0) || !c.LastHeartbeatTime.Time.Equal(later)) {
			t.Errorf("%s: transition %v heartbeat %v, want the first transition kept and a new heartbeat", c.Type, c.LastTransitionTime, c.LastHeartbeatTime)
		}
	}
}

func readyOf(nd *corev1.Node) corev1.NodeCondition {
	for _, c := range nd.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

// TestReapplyLabels: at a restart the configured labels are merged over the
// existing Node's (K3s); others and the taints are left as they are.
func TestReapplyLabels(t *testing.T) {
	existing := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"pool": "old", "gone": "x", "admin": "y"}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "old", Effect: corev1.TaintEffectNoSchedule}}}}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   map[string]string
		writes int
	}{
		{"changed and new", map[string]string{"pool": "new", "zone": "z"}, map[string]string{"pool": "new", "zone": "z", "gone": "x", "admin": "y"}, 1},
		{"unchanged", map[string]string{"pool": "old"}, map[string]string{"pool": "old", "gone": "x", "admin": "y"}, 0},
		{"none", nil, map[string]string{"pool": "old", "gone": "x", "admin": "y"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(existing.DeepCopy())
			k := testKubelet()
			k.cfg.Client, k.log = client, k.cfg.Logger
			k.cfg.NodeLabels = tt.labels
			k.cfg.RegisterWithTaints = []corev1.Taint{{Key: "new", Effect: corev1.TaintEffectNoExecute}}
			nd, _ := client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
			client.ClearActions()
			got, err := k.reapplyLabels(context.Background(), nd)
			if err != nil {
				t.Fatal(err)
			}
			if len(client.Actions()) != tt.writes {
				t.Errorf("%d API calls, want %d", len(client.Actions()), tt.writes)
			}
			stored, _ := client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
			for _, n := range []*corev1.Node{got, stored} {
				if len(n.Labels) != len(tt.want) {
					t.Errorf("labels %v, want %v", n.Labels, tt.want)
				}
				for key, v := range tt.want {
					if n.Labels[key] != v {
						t.Errorf("labels %v, want %v", n.Labels, tt.want)
					}
				}
				if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "old" {
					t.Errorf("taints %v: an existing node keeps its own", n.Spec.Taints)
				}
			}
		})
	}
}
