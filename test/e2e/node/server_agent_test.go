package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestServerRunsItsOwnAgent: `skiff server` without --disable-agent runs
// the node agent in the process, so a fresh server is a one-node cluster
// that runs pods.
func TestServerRunsItsOwnAgent(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	bridge := fmt.Sprintf("sks%d", n%100000)
	dropServerAgentNet(t, bridge)
	srv := framework.StartServer(t, "--disable-agent=false", "--pod-bridge", bridge,
		"--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 100+(n+7)%100))
	cs := srv.Client()
	ctx := framework.Context(t, 3*time.Minute)
	host, _ := os.Hostname()

	var node *corev1.Node
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		nd, err := cs.CoreV1().Nodes().Get(ctx, host, metav1.GetOptions{})
		if err == nil && nd.Spec.PodCIDR != "" && nodeReady(nd) {
			node = nd
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not Ready with a podCIDR: %v %+v\n%s", host, err, nd, srv.Logs())
		}
	}
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", srv.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, framework.BusyboxPod("hello", "sh", "-c", "echo hi; sleep 3600"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := framework.WaitPod(t, cs, "hello", 60*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && framework.PodReady(p)
	})
	if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || !netip.MustParsePrefix(node.Spec.PodCIDR).Contains(ip) || p.Spec.NodeName != host {
		t.Fatalf("pod on %q with IP %q, want node %s and an IP in %s", p.Spec.NodeName, p.Status.PodIP, host, node.Spec.PodCIDR)
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := cs.CoreV1().Pods("default").Get(context.Background(), "hello", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pod not gone 30 s after delete")
		}
	}
}

// dropServerAgentNet removes, once the test's server has stopped, what its
// in-process agent leaves on the host: the pod bridge, the egress
// masquerade table, and the Service proxy's and NetworkPolicy enforcer's
// tables under their default names (they keep their rules on exit, as
// upstream's kube-proxy does): a later test's traffic to the same
// ClusterIPs (every cluster's kube-dns is 10.43.0.10) would still meet
// them. Call it before starting the server, so that it runs after its stop.
func dropServerAgentNet(t *testing.T, bridge string) {
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", bridge).Run()
		exec.Command("nft", "delete", "table", "ip", "skiff-masq-"+bridge).Run()
		exec.Command("nft", "delete", "table", "ip", "skiff-proxy").Run()
		exec.Command("nft", "delete", "table", "inet", "skiff-netpol").Run()
	})
}
