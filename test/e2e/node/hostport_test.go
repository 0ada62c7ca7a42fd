package node

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// A hostPort reaches its pod through portmap, which only sandboxes with
// host ports run (the others start with a runtime handler whose network
// config has no portmap); deleting the pod removes its port mapping.
func TestHostPort(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	cidr := fmt.Sprintf("10.%d.0.0/16", 100+(n*3+41)%100)
	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 3*time.Minute)
	const node = "hostport-e2e"
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("sph%d", n%100000))
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil || nd.Spec.PodCIDR == "" {
		t.Fatalf("node %s: %v %+v", node, err, nd)
	}
	// The bridge has the podCIDR's first address: a local address, which
	// portmap's DNAT for locally originated traffic covers.
	gw := netip.MustParsePrefix(nd.Spec.PodCIDR).Masked().Addr().Next()

	hostPort := framework.FreePort(t)
	hp := framework.BusyboxPod("hp", "httpd", "-f", "-p", "8080", "-h", "/etc")
	hp.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: int32(hostPort), Protocol: corev1.ProtocolTCP}}
	plain := framework.BusyboxPod("plain", "sleep", "3600")
	for _, p := range []*corev1.Pod{hp, plain} {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	uids := map[string]string{}
	for _, name := range []string{"hp", "plain"} {
		p := framework.WaitPod(t, cs, name, 60*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning && framework.PodReady(p)
		})
		uids[name] = string(p.UID)
	}

	c, err := cri.Dial(containerd.Socket(a.DataDir), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sbs, err := c.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]string{}
	for _, sb := range sbs {
		handlers[sb.Labels["io.kubernetes.pod.uid"]] = sb.RuntimeHandler
	}
	if h := handlers[uids["hp"]]; h != "" {
		t.Errorf("pod with a hostPort runs with handler %q, want the default (portmap in its network)", h)
	}
	if h := handlers[uids["plain"]]; h != containerd.NoHostPortHandler {
		t.Errorf("pod without host ports runs with handler %q, want %q", h, containerd.NoHostPortHandler)
	}

	addr := net.JoinHostPort(gw.String(), strconv.Itoa(hostPort))
	get := func() (string, error) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(conn, "GET /hostname HTTP/1.0\r\n\r\n")
		b := make([]byte, 4096)
		k, _ := conn.Read(b)
		return string(b[:k]), nil
	}
	var body string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if body, err = get(); err == nil && strings.Contains(body, "200") {
			break
		}
	}
	if err != nil || !strings.Contains(body, "200") {
		t.Fatalf("GET http://%s/hostname through the hostPort: %v %q", addr, err, body)
	}

	natRule := func() bool {
		out, _ := exec.Command("iptables-save", "-t", "nat").Output()
		return strings.Contains(string(out), "--dport "+strconv.Itoa(hostPort)+" ")
	}
	if !natRule() {
		t.Errorf("no nat rule for port %d while the pod runs (does portmap still use iptables?)", hostPort)
	}

	zero := int64(0)
	if err := cs.CoreV1().Pods("default").Delete(ctx, "hp", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		sbs, err := c.ListPodSandbox(ctx, nil)
		gone := err == nil
		for _, sb := range sbs {
			if sb.Labels["io.kubernetes.pod.uid"] == uids["hp"] {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox of the deleted pod still there: %v", err)
		}
	}
	// portmap's DEL removed the mapping: nothing answers on the port.
	if body, err := get(); err == nil && strings.Contains(body, "200") {
		t.Errorf("hostPort %d still answers after the pod was deleted: %q", hostPort, body)
	}
	if natRule() {
		t.Errorf("a nat rule for port %d is left after the pod was deleted", hostPort)
	}
}
