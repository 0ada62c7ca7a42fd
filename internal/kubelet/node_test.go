package kubelet

import (
	"context"
	"testing"

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
	if len(nd.Spec.Taints) != 1 || nd.Spec.Taints[0].Key != "k" {
		t.Errorf("taints %v", nd.Spec.Taints)
	}
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
