package agent

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/knftables"
)

func node(name, cidr string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: cidr}}
}

func TestPodEgress(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, "skiff-masq-br0")
	e := &podEgress{nft: fake, table: "skiff-masq-br0", bridge: "br0"}
	ctx := context.Background()
	// No podCIDR of our own yet: nothing written.
	if err := e.sync(ctx, "a", []*corev1.Node{node("a", ""), node("b", "10.42.1.0/24")}); err != nil {
		t.Fatal(err)
	}
	if fake.Table != nil {
		t.Fatalf("table written before the node has a podCIDR: %s", fake.Dump())
	}
	nodes := []*corev1.Node{node("a", "10.42.0.0/24"), node("b", "10.42.1.0/24"), node("c", "fd00::/64")}
	if err := e.sync(ctx, "a", nodes); err != nil {
		t.Fatal(err)
	}
	dump := fake.Dump()
	for _, want := range []string{"iifname br0 ip saddr 10.42.0.0/24 ip daddr != @pod-cidrs masquerade fully-random",
		"add element ip skiff-masq-br0 pod-cidrs { 10.42.0.0/24 }", "add element ip skiff-masq-br0 pod-cidrs { 10.42.1.0/24 }"} {
		if !strings.Contains(dump, want) {
			t.Errorf("table lacks %q:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, "fd00") {
		t.Errorf("IPv6 podCIDR in an ip table:\n%s", dump)
	}
	// The same nodes again: no transaction at all.
	before := fake.LastTransaction
	if err := e.sync(ctx, "a", nodes); err != nil {
		t.Fatal(err)
	}
	if fake.LastTransaction != before {
		t.Error("unchanged node list rewrote the table")
	}
	// A node goes: its podCIDR leaves the set (its pods are no longer ours
	// to reach without NAT).
	if err := e.sync(ctx, "a", nodes[:1]); err != nil {
		t.Fatal(err)
	}
	if dump = fake.Dump(); strings.Contains(dump, "10.42.1.0/24") {
		t.Errorf("deleted node's podCIDR still in the set:\n%s", dump)
	}
}
