package proxy

import (
	"fmt"
	"net"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// UDP has no connection to end: a conntrack entry made while a Service
// pointed at an endpoint keeps sending a client's datagrams there (or
// nowhere) after the rules changed, as long as the client keeps sending.
// So, as upstream's kube-proxy does, the proxy deletes the UDP entries a
// change made stale: those DNATed to an endpoint that left the Service, and
// all entries of a Service port that had no endpoint before (they were made
// while nothing answered).

// udpPort is what the conntrack clean-up needs of one UDP Service port.
type udpPort struct {
	frontends []string // cluster IP and external IPs
	port      int32
	nodePort  int32
	endpoints map[string]bool // IPs of the endpoints the rules use
}

// udpService holds a Service's UDP ports by port name.
type udpService map[string]udpPort

// flowFilter selects UDP conntrack entries: by original destination
// (address and/or port) and, when set, by the reply's source (the endpoint
// the entry was DNATed to).
type flowFilter struct {
	origDstIP   string
	origDstPort int32
	replySrcIP  string
}

func (f flowFilter) String() string {
	return fmt.Sprintf("udp dst %s:%d via %s", f.origDstIP, f.origDstPort, f.replySrcIP)
}

// udpPorts summarizes the UDP ports of a Service's servicePorts.
func udpPorts(sps []servicePort) udpService {
	var out udpService
	for _, sp := range sps {
		if sp.proto != "udp" {
			continue
		}
		u := udpPort{port: sp.port, nodePort: sp.nodePort, endpoints: map[string]bool{}}
		if sp.clusterIP != "" {
			u.frontends = append(u.frontends, sp.clusterIP)
		}
		u.frontends = append(u.frontends, sp.externalIPs...)
		for _, e := range usable(sp.endpoints, false) {
			u.endpoints[e.ip] = true
		}
		if out == nil {
			out = udpService{}
		}
		out[sp.portName] = u
	}
	return out
}

// staleFlows lists the filters for the entries that the change from old to
// cur (either may be nil) made stale.
func staleFlows(old, cur udpService) []flowFilter {
	var out []flowFilter
	for name, o := range old {
		c, ok := cur[name]
		for ip := range o.endpoints {
			if ok && c.endpoints[ip] {
				continue
			}
			for _, fe := range o.frontends {
				out = append(out, flowFilter{origDstIP: fe, origDstPort: o.port, replySrcIP: ip})
			}
			if o.nodePort > 0 {
				out = append(out, flowFilter{origDstPort: o.nodePort, replySrcIP: ip})
			}
		}
	}
	for name, c := range cur {
		if len(c.endpoints) == 0 || len(old[name].endpoints) > 0 {
			continue
		}
		for _, fe := range c.frontends {
			out = append(out, flowFilter{origDstIP: fe, origDstPort: c.port})
		}
		if c.nodePort > 0 {
			out = append(out, flowFilter{origDstPort: c.nodePort})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// conntrack deletes conntrack entries.
type conntrack interface {
	deleteUDP(filters []flowFilter) (uint, error)
}

// kernelConntrack is the kernel's conntrack table, over netlink.
type kernelConntrack struct{}

func (kernelConntrack) deleteUDP(filters []flowFilter) (uint, error) {
	if len(filters) == 0 {
		return 0, nil
	}
	nf := make([]netlink.CustomConntrackFilter, 0, len(filters))
	for _, f := range filters {
		c := &netlink.ConntrackFilter{}
		if err := c.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return 0, err
		}
		if f.origDstIP != "" {
			if err := c.AddIP(netlink.ConntrackOrigDstIP, net.ParseIP(f.origDstIP)); err != nil {
				return 0, err
			}
		}
		if f.origDstPort > 0 {
			if err := c.AddPort(netlink.ConntrackOrigDstPort, uint16(f.origDstPort)); err != nil {
				return 0, err
			}
		}
		if f.replySrcIP != "" {
			if err := c.AddIP(netlink.ConntrackReplySrcIP, net.ParseIP(f.replySrcIP)); err != nil {
				return 0, err
			}
		}
		nf = append(nf, c)
	}
	n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, nf...)
	if err != nil {
		return n, fmt.Errorf("conntrack: delete UDP entries: %w", err)
	}
	return n, nil
}
