// Package hollownode_test runs `skiff hollow-nodes` as a real process
// against a real `skiff server` and checks that its nodes register, renew
// their Leases and run the pods the scheduler binds to them.
package hollownode_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readyNodes(ctx context.Context, cs kubernetes.Interface) map[string]*corev1.Node {
	out := map[string]*corev1.Node{}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: corev1.LabelInstanceTypeStable + "=hollow"})
	if err != nil {
		return out
	}
	for i := range list.Items {
		n := &list.Items[i]
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				out[n.Name] = n
			}
		}
	}
	return out
}

func TestHollowNodes(t *testing.T) {
	srv := framework.StartServer(t)
	cs := srv.Client()
	ctx := framework.Context(t, 3*time.Minute)
	framework.StartHollowNodes(t, srv.Kubeconfig, "--count", "3", "--cpu", "2", "--node-label", "e2e=hollow")

	var nodes map[string]*corev1.Node
	until(t, 30*time.Second, "3 Ready hollow nodes", func() bool { nodes = readyNodes(ctx, cs); return len(nodes) == 3 })
	for _, name := range []string{"hollow-node-0", "hollow-node-1", "hollow-node-2"} {
		n := nodes[name]
		if n == nil {
			t.Fatalf("no Ready node %s among %v", name, nodes)
		}
		if n.Labels["e2e"] != "hollow" || n.Status.Allocatable.Cpu().String() != "2" || n.Status.NodeInfo.KubeletVersion != "v1.37.2-hollow" {
			t.Errorf("%s: labels %v allocatable %v nodeInfo %+v", name, n.Labels, n.Status.Allocatable, n.Status.NodeInfo)
		}
		// Fresh leases: renewed within the last renew period (10 s), and
		// renewed again after it.
		var l *coordinationv1.Lease
		until(t, 10*time.Second, "lease "+name, func() bool {
			var err error
			l, err = cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			return err == nil
		})
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != name || l.Spec.RenewTime == nil ||
			time.Since(l.Spec.RenewTime.Time) > 15*time.Second {
			t.Errorf("lease %s not fresh: %+v", name, l.Spec)
		}
		if len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != n.UID {
			t.Errorf("lease %s owner references %+v, want node UID %s", name, l.OwnerReferences, n.UID)
		}
	}
	first, _ := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "hollow-node-0", metav1.GetOptions{})
	until(t, 20*time.Second, "lease renewed", func() bool {
		l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "hollow-node-0", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(first.Spec.RenewTime.Time)
	})

	// A pod the in-process scheduler binds to a hollow node runs there.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "web", Image: "nginx:1"}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	var p *corev1.Pod
	until(t, 30*time.Second, "pod Running and Ready", func() bool {
		var err error
		p, err = cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	})
	t.Logf("pod Running and Ready on %s after %v", p.Spec.NodeName, time.Since(created).Round(time.Millisecond))
	if nodes[p.Spec.NodeName] == nil {
		t.Errorf("pod bound to %q, not a hollow node", p.Spec.NodeName)
	}
	// The node IPAM controller gives each node a podCIDR; the pod's IP
	// comes from its node's.
	node, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cidr, cerr := netip.ParsePrefix(node.Spec.PodCIDR)
	if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || cerr != nil || !cidr.Contains(ip) {
		t.Errorf("podIP %q not in node %s podCIDR %q", p.Status.PodIP, node.Name, node.Spec.PodCIDR)
	}
	if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Running == nil {
		t.Errorf("container statuses %+v", p.Status.ContainerStatuses)
	}

	// A graceful delete is finished by the hollow kubelet within seconds.
	deleted := time.Now()
	if err := cs.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	until(t, 20*time.Second, "pod gone", func() bool {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	t.Logf("pod gone %v after a graceful delete", time.Since(deleted).Round(time.Millisecond))
}
