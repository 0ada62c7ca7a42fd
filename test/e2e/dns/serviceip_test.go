package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestDNSAtServiceIP: with the node's Service proxy on, the cluster DNS
// answers at the kube-dns ClusterIP (10.43.0.10) — the address pods'
// resolv.conf names — from the host and from a pod that uses only its
// resolv.conf.
func TestDNSAtServiceIP(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 200+(n+23)%50))
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	table := fmt.Sprintf("skdpx%d", n%100000)
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", table).Run() })
	a := framework.StartAgent(t, srv, "dns-svcip", fmt.Sprintf("skd%d", (n+2)%100000), "--proxy-table", table)
	// What a failure needs to be told apart (the slice missing, the proxy not
	// applying it, something else rejecting): the kube-dns EndpointSlices and
	// the proxy's table (the framework adds the server's and the agent's
	// logs). Registered after the agent, so it runs before the agent's
	// clean-up.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		slices, err := cs.DiscoveryV1().EndpointSlices("kube-system").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Logf("kube-system endpointslices: %v", err)
		} else {
			for _, sl := range slices.Items {
				b, _ := json.Marshal(sl)
				t.Logf("endpointslice: %s", b)
			}
		}
		out, _ := exec.Command("nft", "list", "table", "ip", table).CombinedOutput()
		t.Logf("proxy table %s:\n%s", table, out)
	})
	if out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput(); err != nil {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	until(t, 60*time.Second, "kubernetes.default at 10.43.0.10 from the host", func() (bool, string) {
		ips, rcode, err := lookup("10.43.0.10", "kubernetes.default.svc.cluster.local")
		return err == nil && rcode == mdns.RcodeSuccess && len(ips) == 1 && ips[0] == "10.43.0.1", fmt.Sprintf("%v %d %v", ips, rcode, err)
	})
	// busybox nslookup with no server argument asks resolv.conf's
	// nameserver, 10.43.0.10, and walks the search path for a short name.
	if _, err := cs.CoreV1().Pods("default").Create(ctx, framework.BusyboxPod("client", "sleep", "3600"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, cs, "client", 90*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	k := srv.NewKubectl(t, framework.DefaultKubectl)
	until(t, 30*time.Second, "kubernetes.default.svc.cluster.local from the pod through 10.43.0.10", func() (bool, string) {
		r := k.Run("exec", "client", "--", "nslookup", "kubernetes.default.svc.cluster.local")
		return r.Err == nil && strings.Contains(r.Stdout, "10.43.0.10") && strings.Contains(r.Stdout, "10.43.0.1"), r.Stdout + r.Stderr
	})
}
