package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/dns"
	"github.com/skiff-sh/skiff/internal/kubelet"
)

// Names of the kube-dns Service and of the EndpointSlices the agents keep
// for it.
const (
	kubeDNSService = "kube-dns"
	// dnsSliceManager is the managed-by label of the agents' kube-dns
	// slices; the endpointslice controller leaves slices of other managers
	// alone.
	dnsSliceManager = "skiff-agent"
)

// nodeDNS runs the cluster DNS server of one node on the pod bridge's
// gateway address (the first address of the node's podCIDR), so that agents
// sharing a machine each have their own, and keeps the EndpointSlice
// kube-system/kube-dns-<node> that lists it for the kube-dns Service.
type nodeDNS struct {
	client kubernetes.Interface
	node   string
	bridge string
	domain string
	log    *slog.Logger
	// port is the served port (53; tests may pick another).
	port int
}

// Run waits for the node's podCIDR, puts the gateway address on the bridge
// if the CNI plugin has not yet, serves DNS and keeps the EndpointSlice
// until ctx ends; then it deletes the slice. A failing server is restarted
// with back-off; it never stops the agent.
func (d *nodeDNS) Run(ctx context.Context) error {
	node, gw, prefix, err := d.waitPodCIDR(ctx)
	if err != nil {
		return err
	}
	if err := ensureBridgeAddr(d.bridge, gw, prefix); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	defer d.deleteSlice()
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: 100, Cap: 30 * time.Second}
	for {
		err := d.serve(ctx, node, gw)
		if ctx.Err() != nil {
			return nil
		}
		d.log.Error("cluster DNS stopped; restarting", "err", err)
		d.markNotReady(ctx, node, gw)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff.Step()):
		}
	}
}

// serve runs one DNS server and marks the slice Ready once it serves.
func (d *nodeDNS) serve(ctx context.Context, node *corev1.Node, gw net.IP) error {
	srv, err := dns.New(dns.Config{Client: d.client, ListenAddr: net.JoinHostPort(gw.String(), fmt.Sprint(d.port)),
		ClusterDomain: d.domain, Logger: d.log})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		return err
	}
	ready := true
	for {
		if err := d.upsertSlice(ctx, node, gw, ready); err == nil {
			break
		} else if ctx.Err() == nil {
			d.log.Warn("kube-dns endpointslice", "err", err)
		}
		select {
		case err := <-done:
			return err
		case <-time.After(time.Second):
		}
	}
	return <-done
}

// waitPodCIDR polls the Node until it has a podCIDR and returns its first
// address (the bridge's gateway) and prefix length.
func (d *nodeDNS) waitPodCIDR(ctx context.Context) (*corev1.Node, net.IP, int, error) {
	var node *corev1.Node
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		n, err := d.client.CoreV1().Nodes().Get(ctx, d.node, metav1.GetOptions{})
		if err != nil || n.Spec.PodCIDR == "" {
			return false, nil
		}
		node = n
		return true, nil
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("dns: wait for the podCIDR of node %s: %w", d.node, err)
	}
	gw, prefix, err := gatewayOf(node.Spec.PodCIDR)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("dns: node %s: %w", d.node, err)
	}
	return node, gw, prefix, nil
}

// gatewayOf is the first address of cidr, which the bridge CNI plugin
// (isGateway, host-local's default gateway) puts on the bridge.
func gatewayOf(cidr string) (net.IP, int, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, 0, fmt.Errorf("podCIDR %q: %w", cidr, err)
	}
	ip := make(net.IP, len(n.IP))
	copy(ip, n.IP)
	for i := len(ip) - 1; i >= 0; i-- {
		ip[i]++
		if ip[i] != 0 {
			break
		}
	}
	ones, bits := n.Mask.Size()
	if bits-ones < 2 || !n.Contains(ip) {
		return nil, 0, fmt.Errorf("podCIDR %s: too small for a gateway", cidr)
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return ip, ones, nil
}

// ensureBridgeAddr creates the bridge if missing, gives it gw/prefix (the
// exact address the bridge plugin would, so the plugin accepts it) and
// sets it up, so DNS serves before the node's first pod.
func ensureBridgeAddr(bridge string, gw net.IP, prefix int) error {
	link, err := netlink.LinkByName(bridge)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if !errors.As(err, &notFound) {
			return fmt.Errorf("bridge %s: %w", bridge, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridge, TxQLen: -1}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", bridge, err)
		}
		if link, err = netlink.LinkByName(bridge); err != nil {
			return fmt.Errorf("bridge %s: %w", bridge, err)
		}
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists but is not a bridge", bridge)
	}
	bits := 32
	if gw.To4() == nil {
		bits = 128
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw, Mask: net.CIDRMask(prefix, bits)}}
	if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to bridge %s: %w", addr.IPNet, bridge, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set bridge %s up: %w", bridge, err)
	}
	return nil
}

func (d *nodeDNS) sliceName() string { return kubeDNSService + "-" + d.node }

// slice is the kube-dns EndpointSlice of this node. It is owned by the Node
// so the garbage collector removes it with the node.
func (d *nodeDNS) slice(node *corev1.Node, gw net.IP, ready bool) *discoveryv1.EndpointSlice {
	port := int32(d.port)
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	name, nameTCP := "dns", "dns-tcp"
	addrType := discoveryv1.AddressTypeIPv4
	if gw.To4() == nil {
		addrType = discoveryv1.AddressTypeIPv6
	}
	nodeName := d.node
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: d.sliceName(), Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{discoveryv1.LabelServiceName: kubeDNSService, discoveryv1.LabelManagedBy: dnsSliceManager,
				"k8s-app": "kube-dns"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
		AddressType: addrType,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{gw.String()}, NodeName: &nodeName,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready}}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Protocol: &udp, Port: &port}, {Name: &nameTCP, Protocol: &tcp, Port: &port}},
	}
}

func (d *nodeDNS) upsertSlice(ctx context.Context, node *corev1.Node, gw net.IP, ready bool) error {
	want := d.slice(node, gw, ready)
	client := d.client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem)
	cur, err := client.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = client.Create(ctx, want, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	cur.Labels, cur.OwnerReferences = want.Labels, want.OwnerReferences
	cur.AddressType, cur.Endpoints, cur.Ports = want.AddressType, want.Endpoints, want.Ports
	_, err = client.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// markNotReady reports a stopped server (best effort).
func (d *nodeDNS) markNotReady(ctx context.Context, node *corev1.Node, gw net.IP) {
	if err := d.upsertSlice(ctx, node, gw, false); err != nil && ctx.Err() == nil {
		d.log.Warn("kube-dns endpointslice", "err", err)
	}
}

// deleteSlice removes this node's slice on a clean shutdown.
func (d *nodeDNS) deleteSlice() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem).Delete(ctx, d.sliceName(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		d.log.Warn("delete kube-dns endpointslice", "err", err)
	}
}

func newNodeDNS(cfg Config) *nodeDNS {
	bridge := cfg.Bridge
	if bridge == "" {
		bridge = kubelet.DefaultBridge
	}
	domain := cfg.ClusterDomain
	if domain == "" {
		domain = dns.DefaultClusterDomain
	}
	return &nodeDNS{client: cfg.Client, node: cfg.NodeName, bridge: bridge, domain: domain,
		log: cfg.Logger.With("node", cfg.NodeName), port: 53}
}

// runNetwork starts the node's DNS server and host-gw routes, where
// enabled; the returned function stops them (the DNS server deletes its
// EndpointSlice) and waits.
func (a *Agent) runNetwork(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if a.dns != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.dns.Run(ctx); err != nil && ctx.Err() == nil {
				a.dns.log.Error("cluster DNS not started", "err", err)
			}
		}()
	}
	if a.routes != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.routes.Run(ctx); err != nil && ctx.Err() == nil {
				a.routes.log.Error("host-gw routes stopped", "err", err)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}
