package dns

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// onLinkNeighbour picks an address on the same subnet as ip that is not
// assigned to this host: a gateway the kernel accepts for a route.
func onLinkNeighbour(t *testing.T, ip net.IP) net.IP {
	t.Helper()
	ifaces, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]bool{}
	var subnet *net.IPNet
	for _, a := range ifaces {
		if n, ok := a.(*net.IPNet); ok {
			local[n.IP.String()] = true
			if n.IP.Equal(ip) {
				subnet = n
			}
		}
	}
	if subnet == nil {
		t.Skipf("node IP %s is on no local interface", ip)
	}
	ones, bits := subnet.Mask.Size()
	if bits-ones < 2 {
		t.Skipf("node IP %s is on a /%d: no neighbour address to route via", ip, ones)
	}
	base := binary.BigEndian.Uint32(subnet.IP.Mask(subnet.Mask).To4())
	size := uint32(1) << (bits - ones)
	// Count down from the one below the broadcast address.
	for i := uint32(2); i < size && i < 256; i++ {
		cand := make(net.IP, 4)
		binary.BigEndian.PutUint32(cand, base+size-i)
		if !local[cand.String()] {
			return cand
		}
	}
	t.Skipf("no free neighbour address in %s", subnet)
	return nil
}

func routeOf(cidr string) string {
	out, _ := exec.Command("ip", "route", "show", cidr).CombinedOutput()
	return strings.TrimSpace(string(out))
}

func TestHostGatewayRoutes(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	x := 200 + (n+31)%50
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", x))
	cs := srv.Client()
	ctx := framework.Context(t, 3*time.Minute)
	const node = "routes-e2e"
	framework.StartAgent(t, srv, node, fmt.Sprintf("skd%d", (n+1)%100000), "--disable-dns")
	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var nodeIP net.IP
	for _, a := range nd.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			nodeIP = net.ParseIP(a.Address).To4()
		}
	}
	if nodeIP == nil {
		t.Fatalf("node %s has no IPv4 InternalIP: %v", node, nd.Status.Addresses)
	}
	gw := onLinkNeighbour(t, nodeIP)
	remoteCIDR, twinCIDR := fmt.Sprintf("10.%d.200.0/24", x), fmt.Sprintf("10.%d.201.0/24", x)
	t.Cleanup(func() {
		exec.Command("ip", "route", "del", remoteCIDR).Run()
		exec.Command("ip", "route", "del", twinCIDR).Run()
	})

	// Nodes written directly: a twin on this host (its InternalIP is ours)
	// needs no route; a remote one is routed via its InternalIP.
	addNode := func(name, cidr string, ip net.IP) {
		t.Helper()
		if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip.String()}}
			_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	addNode("twin", twinCIDR, nodeIP)
	begin := time.Now()
	addNode("remote", remoteCIDR, gw)
	until(t, 30*time.Second, "route to the remote node's podCIDR", func() (bool, string) {
		r := routeOf(remoteCIDR)
		return strings.Contains(r, "via "+gw.String()) && strings.Contains(r, "proto 115"), r
	})
	t.Logf("route %q installed %v after the node was written", routeOf(remoteCIDR), time.Since(begin).Round(time.Millisecond))
	if r := routeOf(twinCIDR); r != "" {
		t.Errorf("route for a node on this host: %q", r)
	}
	if r := routeOf(nd.Spec.PodCIDR); strings.Contains(r, "proto 115") {
		t.Errorf("route for the agent's own podCIDR: %q", r)
	}

	// Deleting the node removes its route.
	if err := cs.CoreV1().Nodes().Delete(ctx, "remote", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	until(t, 30*time.Second, "route removed with the node", func() (bool, string) {
		r := routeOf(remoteCIDR)
		return r == "", r
	})
}
