package agent

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// podEgress masquerades what this node's pods send outside the pod
// network, as flannel does: traffic from the node's podCIDR to an address
// in no node's podCIDR leaves with the node's address; pod-to-pod traffic
// (on this node or another) keeps its source, so pods see each other's
// real IPs. It owns one nftables table per pod bridge (so agents sharing a
// machine keep apart), kept in step with the Node list; the table stays
// when the agent stops (pods keep running).
type podEgress struct {
	nft    knftables.Interface
	table  string
	bridge string
	// applied is the last rule set written ("" before the first).
	applied string
}

// egressTable names the masquerade table of the pod bridge.
func egressTable(bridge string) string { return "skiff-masq-" + bridge }

func newPodEgress(bridge string) (*podEgress, error) {
	table := egressTable(bridge)
	nft, err := knftables.New(knftables.IPv4Family, table)
	if err != nil {
		return nil, fmt.Errorf("egress masquerade: nftables: %w", err)
	}
	return &podEgress{nft: nft, table: table, bridge: bridge}, nil
}

// egressRules is what the table holds for the local podCIDR and every
// node's podCIDR (IPv4 only; "" local means no rule yet).
func egressRules(local string, all []string) (string, []string) {
	var cidrs []string
	for _, c := range all {
		if _, n, err := net.ParseCIDR(c); err == nil && n.IP.To4() != nil {
			cidrs = append(cidrs, n.String())
		}
	}
	slices.Sort(cidrs)
	cidrs = slices.Compact(cidrs)
	if _, n, err := net.ParseCIDR(local); err != nil || n.IP.To4() == nil {
		return "", cidrs
	} else {
		local = n.String()
	}
	return local, cidrs
}

// sync writes the table for nodes (whole, in one transaction) when it
// differs from what was last written.
func (e *podEgress) sync(ctx context.Context, self string, nodes []*corev1.Node) error {
	var local string
	var all []string
	for _, n := range nodes {
		if n.Spec.PodCIDR == "" {
			continue
		}
		all = append(all, n.Spec.PodCIDR)
		if n.Name == self {
			local = n.Spec.PodCIDR
		}
	}
	local, cidrs := egressRules(local, all)
	if local == "" {
		return nil
	}
	want := local + "|" + strings.Join(cidrs, ",")
	if want == e.applied {
		return nil
	}
	tx := e.nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff: pod egress masquerade")})
	tx.Add(&knftables.Set{Name: "pod-cidrs", Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.IntervalFlag}})
	for _, c := range cidrs {
		tx.Add(&knftables.Element{Set: "pod-cidrs", Key: []string{c}})
	}
	tx.Add(&knftables.Chain{Name: "postrouting", Type: knftables.PtrTo(knftables.NATType),
		Hook: knftables.PtrTo(knftables.PostroutingHook), Priority: knftables.PtrTo(knftables.SNATPriority)})
	// Only what the pods send in through this node's bridge: a table left
	// by a gone agent must not rewrite anyone else's traffic (bridged
	// frames of other bridges cross the ip hooks too, with br_netfilter).
	tx.Add(&knftables.Rule{Chain: "postrouting", Rule: knftables.Concat("iifname", e.bridge, "ip saddr", local,
		"ip daddr != @pod-cidrs", "masquerade fully-random")})
	if err := e.nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("egress masquerade table %s: %w", e.table, err)
	}
	e.applied = want
	return nil
}
