package endpoints

import (
	"fmt"
	"math"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// MaxCapacity is the most addresses one Endpoints object holds; beyond it
// the controller truncates and marks the object over capacity.
const MaxCapacity = 1000

// noPort stands for "this address has no ports" (headless Services without
// ports) while packing.
var noPort = corev1.EndpointPort{Port: -1}

type addrKey struct {
	ip  string
	uid types.UID
}

func keyOf(a *corev1.EndpointAddress) addrKey {
	k := addrKey{ip: a.IP}
	if a.TargetRef != nil {
		k.uid = a.TargetRef.UID
	}
	return k
}

// packer collects (address, port, ready) triples and packs them into the
// fewest subsets: the ports that share exactly the same addresses (with the
// same readiness) form one subset, as upstream's RepackSubsets. A pod that
// lacks a named port therefore lands in a subset of its own.
type packer struct {
	addrs  map[addrKey]corev1.EndpointAddress
	byPort map[corev1.EndpointPort]map[addrKey]bool
}

func newPacker() *packer {
	return &packer{addrs: map[addrKey]corev1.EndpointAddress{}, byPort: map[corev1.EndpointPort]map[addrKey]bool{}}
}

// add records that addr serves port (nil: no ports).
func (p *packer) add(addr corev1.EndpointAddress, port *corev1.EndpointPort, ready bool) {
	k := keyOf(&addr)
	if _, ok := p.addrs[k]; !ok {
		p.addrs[k] = addr
	}
	pt := noPort
	if port != nil {
		pt = *port
	}
	m, ok := p.byPort[pt]
	if !ok {
		m = map[addrKey]bool{}
		p.byPort[pt] = m
	}
	m[k] = m[k] || ready
}

func (p *packer) subsets() []corev1.EndpointSubset {
	type group struct {
		addrs map[addrKey]bool
		ports []corev1.EndpointPort
	}
	groups := map[string]*group{}
	for port, addrs := range p.byPort {
		sig := signature(addrs)
		g, ok := groups[sig]
		if !ok {
			g = &group{addrs: addrs}
			groups[sig] = g
		}
		if port != noPort {
			g.ports = append(g.ports, port)
		}
	}
	out := make([]corev1.EndpointSubset, 0, len(groups))
	for _, g := range groups {
		var ss corev1.EndpointSubset
		for k, ready := range g.addrs {
			if ready {
				ss.Addresses = append(ss.Addresses, p.addrs[k])
			} else {
				ss.NotReadyAddresses = append(ss.NotReadyAddresses, p.addrs[k])
			}
		}
		ss.Ports = g.ports
		out = append(out, ss)
	}
	return SortSubsets(out)
}

func signature(addrs map[addrKey]bool) string {
	parts := make([]string, 0, len(addrs))
	for k, ready := range addrs {
		parts = append(parts, fmt.Sprintf("%s/%s/%t", k.ip, k.uid, ready))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// SortSubsets orders addresses by IP and pod UID, ports by name, number and
// protocol, and subsets by their content, so equal content compares equal.
func SortSubsets(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	for i := range subsets {
		ss := &subsets[i]
		sortAddrs(ss.Addresses)
		sortAddrs(ss.NotReadyAddresses)
		sort.Slice(ss.Ports, func(a, b int) bool { return portKey(ss.Ports[a]) < portKey(ss.Ports[b]) })
	}
	sort.SliceStable(subsets, func(a, b int) bool { return subsetKey(&subsets[a]) < subsetKey(&subsets[b]) })
	return subsets
}

func sortAddrs(as []corev1.EndpointAddress) {
	sort.Slice(as, func(i, j int) bool {
		ki, kj := keyOf(&as[i]), keyOf(&as[j])
		if ki.ip != kj.ip {
			return ki.ip < kj.ip
		}
		return ki.uid < kj.uid
	})
}

func portKey(p corev1.EndpointPort) string {
	return fmt.Sprintf("%s/%05d/%s", p.Name, p.Port, p.Protocol)
}

func subsetKey(ss *corev1.EndpointSubset) string {
	var b strings.Builder
	for _, p := range ss.Ports {
		b.WriteString(portKey(p) + ",")
	}
	b.WriteString("|")
	for _, a := range ss.Addresses {
		b.WriteString(a.IP + ",")
	}
	b.WriteString("|")
	for _, a := range ss.NotReadyAddresses {
		b.WriteString(a.IP + ",")
	}
	return b.String()
}

// truncate cuts subsets down to MaxCapacity addresses as upstream: ready
// addresses are kept before not-ready ones, and each subset keeps a share
// proportional to its size. Subsets left without addresses are dropped. It
// reports whether anything was cut.
func truncate(subsets []corev1.EndpointSubset) ([]corev1.EndpointSubset, bool) {
	ready, notReady := 0, 0
	for _, ss := range subsets {
		ready += len(ss.Addresses)
		notReady += len(ss.NotReadyAddresses)
	}
	if ready+notReady <= MaxCapacity {
		return subsets, false
	}
	truncReady := ready > MaxCapacity
	limit, total := MaxCapacity-ready, notReady
	if truncReady {
		limit, total = MaxCapacity, ready
	}
	left := limit
	for i := range subsets {
		ss := &subsets[i]
		n := len(ss.NotReadyAddresses)
		if truncReady {
			n = len(ss.Addresses)
		}
		share := min(int(math.Ceil(float64(n)/float64(total)*float64(limit))), left)
		if truncReady {
			ss.Addresses = ss.Addresses[:min(share, len(ss.Addresses))]
			ss.NotReadyAddresses = nil
			left -= len(ss.Addresses)
		} else {
			ss.NotReadyAddresses = ss.NotReadyAddresses[:min(share, len(ss.NotReadyAddresses))]
			left -= len(ss.NotReadyAddresses)
		}
	}
	kept := subsets[:0]
	for _, ss := range subsets {
		if len(ss.Addresses)+len(ss.NotReadyAddresses) > 0 {
			kept = append(kept, ss)
		}
	}
	return kept, true
}
