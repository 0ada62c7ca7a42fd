package multinode

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// hosts makes a bridge on this machine with address <prefix>.1/24 and one
// network namespace per name, each with a veth on the bridge at
// <prefix>.<2+i>/24 and a default route via the bridge. It returns the
// namespaces' addresses.
func hosts(t *testing.T, bridge, prefix string, names ...string) []string {
	t.Helper()
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	run(t, "ip", "link", "add", bridge, "type", "bridge")
	run(t, "ip", "addr", "add", prefix+".1/24", "dev", bridge)
	run(t, "ip", "link", "set", bridge, "up")
	var ips []string
	for i, ns := range names {
		ip := fmt.Sprintf("%s.%d", prefix, 2+i)
		host, peer := fmt.Sprintf("%sh%d", bridge, i), fmt.Sprintf("%sp%d", bridge, i)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
		run(t, "ip", "link", "set", host, "master", bridge, "up")
		run(t, "ip", "link", "set", peer, "netns", ns)
		run(t, "ip", "-n", ns, "link", "set", peer, "name", "eth0")
		run(t, "ip", "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", ns, "route", "add", "default", "via", prefix+".1")
		ips = append(ips, ip)
	}
	return ips
}

func webPod(name, node string) *corev1.Pod {
	p := framework.BusyboxPod(name, "sh", "-c", "mkdir /www; echo "+name+" > /www/index.html; exec httpd -f -vv -p 8080 -h /www")
	p.Labels = map[string]string{"app": "web"}
	p.Spec.NodeName = node
	return p
}

func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	t.Fatalf("%s: not within %v: %s", what, d, last)
}

func TestPodNetworkAcrossNodes(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid() % 100000
	// SKM_N fixes the addresses of a run to repeat it (they derive from n).
	if v := os.Getenv("SKM_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	bridge := fmt.Sprintf("skm%d", n)
	prefix := fmt.Sprintf("10.251.%d", n%250)
	nsA, nsB := fmt.Sprintf("skm%da", n), fmt.Sprintf("skm%db", n)
	ips := hosts(t, bridge, prefix, nsA, nsB)
	// The bridge exists before the server starts, so its address is in the
	// serving certificate the agents verify.
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 150+n%50),
		"--bind-address", "0.0.0.0", "--advertise-address", prefix+".1")
	cs := srv.Client()
	ctx := framework.Context(t, 8*time.Minute)
	url := fmt.Sprintf("https://%s.1:%d", prefix, srv.Port)
	var agents []*framework.Agent
	for i, ns := range []string{nsA, nsB} {
		node := fmt.Sprintf("node-%c", 'a'+i)
		a := framework.StartAgentInNetns(t, srv, ns, url, node, "skiff0", "--node-ip", ips[i], "--proxy-table", "skiff-proxy")
		if out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput(); err != nil {
			t.Fatalf("skiff image import: %v: %s", err, out)
		}
		agents = append(agents, a)
	}
	for _, p := range []*corev1.Pod{webPod("web-a", "node-a"), webPod("web-b", "node-b")} {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	a := framework.WaitPod(t, cs, "web-a", 2*time.Minute, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	b := framework.WaitPod(t, cs, "web-b", 2*time.Minute, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	t.Logf("web-a %s on node-a, web-b %s on node-b", a.Status.PodIP, b.Status.PodIP)
	k := srv.NewKubectl(t, framework.DefaultKubectl)

	t.Run("PodToPodWithoutNAT", func(t *testing.T) {
		eventually(t, 30*time.Second, "web-a → web-b", func() (bool, string) {
			r := k.Run("exec", "web-a", "--", "wget", "-qO-", "http://"+b.Status.PodIP+":8080/")
			return r.Err == nil && strings.TrimSpace(r.Stdout) == "web-b", r.Stdout + r.Stderr
		})
		// web-b's httpd saw web-a's own address, not a node's.
		eventually(t, 10*time.Second, "web-b's log names web-a's IP", func() (bool, string) {
			logs := k.Run("logs", "web-b").Stdout
			return strings.Contains(logs, a.Status.PodIP+"]:"), logs
		})
		r := k.Run("exec", "web-b", "--", "wget", "-qO-", "http://"+a.Status.PodIP+":8080/")
		if r.Err != nil || strings.TrimSpace(r.Stdout) != "web-a" {
			t.Errorf("web-b → web-a: %v %q %s", r.Err, r.Stdout, r.Stderr)
		}
	})

	t.Run("ServiceOnOtherNode", func(t *testing.T) {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web-b"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
		svc.Spec.Selector = map[string]string{"app": "web"}
		// Only web-b backs it: relabel web-a out of the selector.
		patch := []byte(`{"metadata":{"labels":{"app":"other"}}}`)
		if _, err := cs.CoreV1().Pods("default").Patch(ctx, "web-a", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// From a pod on node-a, by name: DNS at the kube-dns ClusterIP (its
		// endpoints are both nodes' DNS servers) and the Service's pod on
		// node-b.
		eventually(t, 30*time.Second, "web-b.default.svc.cluster.local from node-a", func() (bool, string) {
			r := k.Run("exec", "web-a", "--", "wget", "-qO-", "http://web-b.default.svc.cluster.local/")
			return r.Err == nil && strings.TrimSpace(r.Stdout) == "web-b", r.Stdout + r.Stderr
		})
	})

	t.Run("DNSFromEveryNode", func(t *testing.T) {
		for _, pod := range []string{"web-a", "web-b"} {
			eventually(t, 30*time.Second, "nslookup from "+pod, func() (bool, string) {
				r := k.Run("exec", pod, "--", "nslookup", "kubernetes.default.svc.cluster.local")
				return r.Err == nil && strings.Contains(r.Stdout, "10.43.0.1"), r.Stdout + r.Stderr
			})
		}
	})
	_ = agents
}
