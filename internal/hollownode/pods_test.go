package hollownode

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clienttesting "k8s.io/client-go/testing"
)

func TestBoundPodRunsAndIsReady(t *testing.T) {
	// hollow-node-1 already has a pod CIDR (from a node IPAM controller);
	// hollow-node-0 falls back to 10.244.0.0/24.
	withCIDR := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "hollow-node-1"}, Spec: corev1.NodeSpec{PodCIDR: "10.9.3.0/24"}}
	_, cs := start(t, Config{Count: 2}, withCIDR)
	ctx := context.Background()
	tests := []struct {
		node, cidr string
	}{
		{"hollow-node-0", "10.244.0.0/24"},
		{"hollow-node-1", "10.9.3.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.node, func(t *testing.T) {
			name := "web-" + tt.node
			pod := makePod(name, tt.node, func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox"}}
			})
			if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			var p *corev1.Pod
			eventually(t, "Running and Ready", func() bool { p, _ = getPod(t, cs, name); return runningReady(p) })
			ip, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || !netip.MustParsePrefix(tt.cidr).Contains(ip) {
				t.Errorf("podIP %q not in %s", p.Status.PodIP, tt.cidr)
			}
			nd, _ := cs.CoreV1().Nodes().Get(ctx, tt.node, metav1.GetOptions{})
			if p.Status.HostIP == "" || p.Status.HostIP != nd.Status.Addresses[0].Address {
				t.Errorf("hostIP %q, node addresses %v", p.Status.HostIP, nd.Status.Addresses)
			}
			if p.Status.StartTime == nil {
				t.Error("no startTime")
			}
			for _, typ := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized,
				corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
				if got := podCondition(p, typ); got != corev1.ConditionTrue {
					t.Errorf("condition %s = %q", typ, got)
				}
			}
			if len(p.Status.ContainerStatuses) != 1 {
				t.Fatalf("containerStatuses %+v", p.Status.ContainerStatuses)
			}
			c := p.Status.ContainerStatuses[0]
			if c.State.Running == nil || !c.Ready || c.Started == nil || !*c.Started || c.RestartCount != 0 ||
				c.ContainerID != "hollow://uid-"+name+"/app" || c.ImageID != "hollow://registry.example/app:1" {
				t.Errorf("container status %+v", c)
			}
			if len(p.Status.InitContainerStatuses) != 1 || p.Status.InitContainerStatuses[0].State.Terminated == nil ||
				p.Status.InitContainerStatuses[0].State.Terminated.Reason != "Completed" {
				t.Errorf("init container statuses %+v", p.Status.InitContainerStatuses)
			}
		})
	}
}

func TestPodIPsAreUnique(t *testing.T) {
	_, cs := start(t, Config{Count: 1})
	ctx := context.Background()
	names := []string{"a", "b", "c", "d", "e"}
	for _, name := range names {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, makePod(name, "hollow-node-0"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]string{}
	for _, name := range names {
		var p *corev1.Pod
		eventually(t, name+" running", func() bool { p, _ = getPod(t, cs, name); return runningReady(p) })
		if other, dup := seen[p.Status.PodIP]; dup {
			t.Errorf("pods %s and %s share %s", name, other, p.Status.PodIP)
		}
		seen[p.Status.PodIP] = name
	}
	// A running pod's status is written once it changes, not at every sync.
	writes := func() int {
		n := 0
		for _, a := range cs.Actions() {
			if a.GetVerb() == "update" && a.GetSubresource() == "status" && a.GetResource().Resource == "pods" {
				n++
			}
		}
		return n
	}
	before := writes()
	time.Sleep(5 * fastTiming.leaseRenew)
	if after := writes(); after != before {
		t.Errorf("%d pod status writes for steady pods", after-before)
	}
}

func TestReadinessInitialDelay(t *testing.T) {
	_, cs := start(t, Config{Count: 1})
	pod := makePod("slow", "hollow-node-0", func(p *corev1.Pod) {
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{InitialDelaySeconds: 1}
	})
	created := time.Now()
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var p *corev1.Pod
	eventually(t, "Running", func() bool { p, _ = getPod(t, cs, "slow"); return p.Status.Phase == corev1.PodRunning })
	if podCondition(p, corev1.PodReady) != corev1.ConditionFalse && time.Since(created) < 900*time.Millisecond {
		t.Errorf("Ready before the readiness probe's initial delay: %+v", p.Status.Conditions)
	}
	eventually(t, "Ready", func() bool { p, _ = getPod(t, cs, "slow"); return runningReady(p) })
	if d := time.Since(created); d < 900*time.Millisecond {
		t.Errorf("Ready after %v, want >= 1s", d)
	}
}

func TestExitAfter(t *testing.T) {
	_, cs := start(t, Config{Count: 1})
	tests := []struct {
		name      string
		code      string
		policy    corev1.RestartPolicy
		phase     corev1.PodPhase
		exitCode  int32
		reason    string
		notReady  string
		restarted bool
	}{
		{"never-ok", "0", corev1.RestartPolicyNever, corev1.PodSucceeded, 0, "Completed", "PodCompleted", false},
		{"never-fail", "3", corev1.RestartPolicyNever, corev1.PodFailed, 3, "Error", "PodFailed", false},
		{"onfailure-ok", "", corev1.RestartPolicyOnFailure, corev1.PodSucceeded, 0, "Completed", "PodCompleted", false},
		{"onfailure-fail", "1", corev1.RestartPolicyOnFailure, corev1.PodRunning, 1, "Error", "", true},
		{"always", "0", corev1.RestartPolicyAlways, corev1.PodRunning, 0, "Completed", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pod := makePod(tt.name, "hollow-node-0", exitAfter("300ms", tt.code, tt.policy))
			if _, err := cs.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			var p *corev1.Pod
			eventually(t, "Running", func() bool { p, _ = getPod(t, cs, tt.name); return runningReady(p) })
			if tt.restarted {
				eventually(t, "restarted and running again", func() bool {
					p, _ = getPod(t, cs, tt.name)
					return runningReady(p) && p.Status.ContainerStatuses[0].RestartCount >= 1
				})
				last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
				if last == nil || last.ExitCode != tt.exitCode || last.Reason != tt.reason {
					t.Errorf("lastState.terminated %+v, want exit %d %s", last, tt.exitCode, tt.reason)
				}
				return
			}
			eventually(t, string(tt.phase), func() bool { p, _ = getPod(t, cs, tt.name); return p.Status.Phase == tt.phase })
			term := p.Status.ContainerStatuses[0].State.Terminated
			if term == nil || term.ExitCode != tt.exitCode || term.Reason != tt.reason {
				t.Errorf("state.terminated %+v, want exit %d %s", term, tt.exitCode, tt.reason)
			}
			for _, typ := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
				for _, c := range p.Status.Conditions {
					if c.Type == typ && (c.Status != corev1.ConditionFalse || c.Reason != tt.notReady) {
						t.Errorf("condition %s = %s (%s), want False (%s)", typ, c.Status, c.Reason, tt.notReady)
					}
				}
			}
		})
	}
}

func TestDeletion(t *testing.T) {
	_, cs := start(t, Config{Count: 1})
	ctx := context.Background()
	if _, err := cs.CoreV1().Pods("default").Create(ctx, makePod("doomed", "hollow-node-0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var p *corev1.Pod
	eventually(t, "Running", func() bool { p, _ = getPod(t, cs, "doomed"); return runningReady(p) })

	// What the API server does on a graceful delete of a bound pod.
	p = p.DeepCopy()
	grace := int64(30)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &metav1.Time{Time: time.Now().Add(30 * time.Second)}, &grace
	if _, err := cs.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	marked := time.Now()
	eventually(t, "pod deleted", func() bool {
		_, err := getPod(t, cs, "doomed")
		return apierrors.IsNotFound(err)
	})
	if d := time.Since(marked); d < fastTiming.stopGrace/2 {
		t.Errorf("deleted after %v, before the containers' stop time", d)
	}
	// The containers were reported stopped before the final delete, which
	// asked for no further grace and named the pod's UID.
	var stopped, deleted bool
	for _, a := range cs.Actions() {
		if u, ok := a.(clienttesting.UpdateAction); ok && a.GetSubresource() == "status" && !deleted {
			if q, ok := u.GetObject().(*corev1.Pod); ok && q.Name == "doomed" && len(q.Status.ContainerStatuses) == 1 &&
				q.Status.ContainerStatuses[0].State.Terminated != nil {
				stopped = true
			}
		}
		if d, ok := a.(clienttesting.DeleteAction); ok && d.GetName() == "doomed" {
			o := d.GetDeleteOptions()
			deleted = o.GracePeriodSeconds != nil && *o.GracePeriodSeconds == 0 &&
				o.Preconditions != nil && o.Preconditions.UID != nil && *o.Preconditions.UID == "uid-doomed"
		}
	}
	if !stopped || !deleted {
		t.Errorf("containers reported stopped: %v; deleted with grace 0 and UID precondition: %v", stopped, deleted)
	}
}

func TestIPPool(t *testing.T) {
	p, err := newIPPool("10.1.2.0/29") // .2 … .6 usable
	if err != nil {
		t.Fatal(err)
	}
	if !p.reserve(netip.MustParseAddr("10.1.2.3"), "held") {
		t.Fatal("reserve of a free in-range address failed")
	}
	if p.reserve(netip.MustParseAddr("10.1.2.3"), "other") || p.reserve(netip.MustParseAddr("10.9.9.9"), "x") {
		t.Fatal("reserve of a held or out-of-range address succeeded")
	}
	got := map[netip.Addr]bool{}
	for i := range 4 {
		a, err := p.allocate("pod")
		if err != nil {
			t.Fatalf("allocate %d: %v", i, err)
		}
		if got[a] || a == netip.MustParseAddr("10.1.2.3") || !p.prefix.Contains(a) {
			t.Fatalf("allocate %d = %v: reused, held or out of range", i, a)
		}
		got[a] = true
	}
	if _, err := p.allocate("pod"); err == nil {
		t.Fatal("allocate from a full pool succeeded")
	}
	p.release(netip.MustParseAddr("10.1.2.4"), "pod")
	if a, err := p.allocate("new"); err != nil || a != netip.MustParseAddr("10.1.2.4") {
		t.Fatalf("allocate after release = %v, %v", a, err)
	}
	if _, err := newIPPool("fd00::/64"); err == nil {
		t.Fatal("IPv6 pod CIDR accepted")
	}
}
