package agent

import (
	"net"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDesiredRoute(t *testing.T) {
	local := func(ip net.IP) bool { return ip.Equal(net.ParseIP("192.0.2.2")) }
	node := func(cidr string, addrs ...corev1.NodeAddress) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{PodCIDR: cidr},
			Status: corev1.NodeStatus{Addresses: addrs}}
	}
	internal := func(ip string) corev1.NodeAddress {
		return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
	}
	deleting := node("10.42.1.0/24", internal("192.0.2.3"))
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	tests := []struct {
		name    string
		node    *corev1.Node
		dst, gw string
	}{
		{"remote node", node("10.42.1.0/24", corev1.NodeAddress{Type: corev1.NodeHostName, Address: "n"}, internal("192.0.2.3")), "10.42.1.0/24", "192.0.2.3"},
		{"no podCIDR yet", node("", internal("192.0.2.3")), "", ""},
		{"no InternalIP", node("10.42.1.0/24", corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.1"}), "", ""},
		{"node on this host", node("10.42.1.0/24", internal("192.0.2.2")), "", ""},
		{"InternalIP of the podCIDR's family", node("10.42.1.0/24", internal("2001:db8::3"), internal("192.0.2.3")), "10.42.1.0/24", "192.0.2.3"},
		{"bad podCIDR", node("10.42.1.0", internal("192.0.2.3")), "", ""},
		{"deleting", deleting, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, gw := desiredRoute(tt.node, local)
			gotDst, gotGw := "", ""
			if dst != nil {
				gotDst, gotGw = dst.String(), gw.String()
			}
			if gotDst != tt.dst || gotGw != tt.gw {
				t.Errorf("route %q via %q, want %q via %q", gotDst, gotGw, tt.dst, tt.gw)
			}
		})
	}
}

func TestGatewayOf(t *testing.T) {
	for cidr, want := range map[string]string{"10.42.3.0/24": "10.42.3.1", "10.42.3.7/24": "10.42.3.1", "fd00:1::/64": "fd00:1::1", "10.0.0.0/31": "", "x": ""} {
		ip, _, err := gatewayOf(cidr)
		got := ""
		if err == nil {
			got = ip.String()
		}
		if got != want {
			t.Errorf("gatewayOf(%s) = %q (%v), want %q", cidr, got, err, want)
		}
	}
}
