package hollownode

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestValidate(t *testing.T) {
	cs := fake.NewSimpleClientset()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{Client: cs, Count: 1}, ""},
		{"ok with quantities", Config{Client: cs, Count: 2, CPU: "500m", Memory: "1Gi", Pods: "10"}, ""},
		{"no client", Config{Count: 1}, "no client"},
		{"zero count", Config{Client: cs}, "count 0"},
		{"bad cpu", Config{Client: cs, Count: 1, CPU: "lots"}, "cpu"},
		{"bad memory", Config{Client: cs, Count: 1, Memory: "-1Gi"}, "memory"},
		{"bad pods", Config{Client: cs, Count: 1, Pods: "x"}, "pods"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRegistration(t *testing.T) {
	// hollow-node-1 exists already (an earlier run): it is adopted, its own
	// labels kept.
	existing := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "hollow-node-1", Labels: map[string]string{"keep": "me"}}}
	n, cs := start(t, Config{Count: 3, CPU: "8", Labels: map[string]string{"pool": "bench"}}, existing)
	ctx := context.Background()
	if got := n.Names(); strings.Join(got, ",") != "hollow-node-0,hollow-node-1,hollow-node-2" {
		t.Fatalf("Names() = %v", got)
	}
	ips := map[string]bool{}
	for _, name := range n.Names() {
		nd, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{corev1.LabelHostname: name, corev1.LabelOSStable: "linux",
			corev1.LabelArchStable: "amd64", corev1.LabelInstanceTypeStable: "hollow", "pool": "bench"} {
			if nd.Labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q", name, k, nd.Labels[k], v)
			}
		}
		for res, want := range map[corev1.ResourceName]string{corev1.ResourceCPU: "8", corev1.ResourceMemory: "16Gi",
			corev1.ResourcePods: "110", corev1.ResourceEphemeralStorage: "100Gi"} {
			c, a := nd.Status.Capacity[res], nd.Status.Allocatable[res]
			if c.Cmp(resource.MustParse(want)) != 0 || a.Cmp(c) != 0 {
				t.Errorf("%s: %s capacity %s allocatable %s, want %s", name, res, c.String(), a.String(), want)
			}
		}
		conds := map[corev1.NodeConditionType]corev1.NodeCondition{}
		for _, c := range nd.Status.Conditions {
			conds[c.Type] = c
		}
		if c := conds[corev1.NodeReady]; c.Status != corev1.ConditionTrue || c.Reason != "KubeletReady" || c.Message != "kubelet is posting ready status" {
			t.Errorf("%s: Ready condition %+v", name, c)
		}
		for typ, reason := range map[corev1.NodeConditionType]string{corev1.NodeMemoryPressure: "KubeletHasSufficientMemory",
			corev1.NodeDiskPressure: "KubeletHasNoDiskPressure", corev1.NodePIDPressure: "KubeletHasSufficientPID"} {
			if c := conds[typ]; c.Status != corev1.ConditionFalse || c.Reason != reason {
				t.Errorf("%s: %s condition %+v", name, typ, c)
			}
		}
		var ip string
		for _, a := range nd.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ip = a.Address
			}
		}
		if ip == "" || ips[ip] {
			t.Errorf("%s: InternalIP %q missing or shared", name, ip)
		}
		ips[ip] = true
		info := nd.Status.NodeInfo
		if info.KubeletVersion != KubeletVersion || info.ContainerRuntimeVersion != RuntimeVersion || info.BootID == "" || info.MachineID == "" {
			t.Errorf("%s: nodeInfo %+v", name, info)
		}
		if nd.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
			t.Errorf("%s: kubelet port %d", name, nd.Status.DaemonEndpoints.KubeletEndpoint.Port)
		}
		l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: lease: %v", name, err)
		}
		if *l.Spec.HolderIdentity != name || *l.Spec.LeaseDurationSeconds != 40 || l.Spec.RenewTime == nil {
			t.Errorf("%s: lease spec %+v", name, l.Spec)
		}
	}
	adopted, _ := cs.CoreV1().Nodes().Get(ctx, "hollow-node-1", metav1.GetOptions{})
	if adopted.Labels["keep"] != "me" {
		t.Errorf("adopted node lost its label: %v", adopted.Labels)
	}
}

func leaseRenewTime(t *testing.T, cs *fake.Clientset, name string) time.Time {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Spec.RenewTime.Time
}

func TestHeartbeatOff(t *testing.T) {
	n, cs := start(t, Config{Count: 2})
	ctx := context.Background()
	silent, alive := "hollow-node-0", "hollow-node-1"
	eventually(t, "first renewal", func() bool { return leaseRenewTime(t, cs, silent).After(time.Now().Add(-50 * time.Millisecond)) })

	n.SetHeartbeat(silent, false)
	time.Sleep(150 * time.Millisecond) // let an in-flight renewal land
	frozen := leaseRenewTime(t, cs, silent)
	aliveBefore := leaseRenewTime(t, cs, alive)
	if _, err := cs.CoreV1().Pods("default").Create(ctx, makePod("on-dead", silent), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A lifecycle controller notices and marks the node Unknown.
	nd, _ := cs.CoreV1().Nodes().Get(ctx, silent, metav1.GetOptions{})
	for i := range nd.Status.Conditions {
		if nd.Status.Conditions[i].Type == corev1.NodeReady {
			nd.Status.Conditions[i].Status, nd.Status.Conditions[i].Reason = corev1.ConditionUnknown, "NodeStatusUnknown"
		}
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, nd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * fastTiming.leaseRenew)

	if got := leaseRenewTime(t, cs, silent); !got.Equal(frozen) {
		t.Errorf("silent node's lease renewed: %v -> %v", frozen, got)
	}
	if got := leaseRenewTime(t, cs, alive); !got.After(aliveBefore) {
		t.Errorf("live node's lease not renewed: %v -> %v", aliveBefore, got)
	}
	if p, _ := getPod(t, cs, "on-dead"); p.Status.Phase != corev1.PodPending {
		t.Errorf("pod on a silent node got status %s", p.Status.Phase)
	}
	if nd, _ := cs.CoreV1().Nodes().Get(ctx, silent, metav1.GetOptions{}); readyTrue(nd) {
		t.Errorf("silent node put Ready back")
	}

	n.SetHeartbeat(silent, true)
	eventually(t, "lease renewed after heartbeat on", func() bool { return leaseRenewTime(t, cs, silent).After(frozen) })
	eventually(t, "Ready=True restored", func() bool {
		nd, _ := cs.CoreV1().Nodes().Get(ctx, silent, metav1.GetOptions{})
		return readyTrue(nd)
	})
	eventually(t, "pod runs once the node is back", func() bool {
		p, _ := getPod(t, cs, "on-dead")
		return runningReady(p)
	})
}
