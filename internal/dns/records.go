package dns

import (
	"net"
	"sort"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// schemaVersion is the DNS specification version served at dns-version.<zone>.
const schemaVersion = "1.1.0"

// zoneInfo is what record building needs to know of the zone.
type zoneInfo struct {
	zone string // lower case, fully qualified: "cluster.local."
	ttl  uint32
}

func (z zoneInfo) hdr(name string, typ uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: z.ttl}
}

func (z zoneInfo) soa() *dns.SOA {
	return &dns.SOA{
		Hdr:     z.hdr(z.zone, dns.TypeSOA),
		Ns:      "ns.dns." + z.zone,
		Mbox:    "hostmaster." + z.zone,
		Serial:  1,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  z.ttl,
	}
}

// staticRecords are the zone's own: the apex SOA, the schema version and the
// `svc` and `pod` subtrees, which exist even with no Service.
func (z zoneInfo) staticRecords() records {
	r := records{}
	r.add(z.zone, z.soa())
	r.add("dns-version."+z.zone, &dns.TXT{Hdr: z.hdr("dns-version."+z.zone, dns.TypeTXT), Txt: []string{schemaVersion}})
	r.touch("svc." + z.zone)
	r.touch("pod." + z.zone)
	return r
}

// addrRR is an A or AAAA record for ip at name.
func (z zoneInfo) addrRR(name string, ip net.IP) dns.RR {
	if v4 := ip.To4(); v4 != nil {
		return &dns.A{Hdr: z.hdr(name, dns.TypeA), A: v4}
	}
	return &dns.AAAA{Hdr: z.hdr(name, dns.TypeAAAA), AAAA: ip}
}

func (z zoneInfo) ptr(r records, ip net.IP, target string) {
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return
	}
	r.add(rev, &dns.PTR{Hdr: z.hdr(rev, dns.TypePTR), Ptr: target})
}

// endpoint is one ready address of a headless Service.
type endpoint struct {
	ip       net.IP
	hostname string // the endpoint's hostname, or its IP with dashes
}

// serviceRecords are the records of one Service given its EndpointSlices,
// per the specification: ClusterIP → A/AAAA, SRV per named port, PTR;
// headless → an address record per ready endpoint, per-hostname records,
// SRV per endpoint and named port, PTR; ExternalName → CNAME.
func (z zoneInfo) serviceRecords(svc *corev1.Service, slices []*discoveryv1.EndpointSlice) records {
	r := records{}
	ns := strings.ToLower(svc.Namespace)
	svcName := strings.ToLower(svc.Name) + "." + ns + ".svc." + z.zone
	r.touch(ns + ".svc." + z.zone)
	r.touch(svcName)

	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		if target := strings.TrimSpace(svc.Spec.ExternalName); target != "" {
			r.add(svcName, &dns.CNAME{Hdr: z.hdr(svcName, dns.TypeCNAME), Target: dns.Fqdn(strings.ToLower(target))})
		}
		return r
	}

	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, s := range ips {
			ip := net.ParseIP(s)
			if ip == nil {
				continue
			}
			r.add(svcName, z.addrRR(svcName, ip))
			z.ptr(r, ip, svcName)
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == "" {
				continue
			}
			srv := srvName(p.Name, p.Protocol, svcName)
			r.touch(srvProtoName(p.Protocol, svcName))
			r.add(srv, &dns.SRV{Hdr: z.hdr(srv, dns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: svcName})
		}
		return r
	}

	// Headless: records come from the ready endpoints. The SRV names of the
	// Service's named ports exist even with no endpoint (NODATA).
	for _, p := range svc.Spec.Ports {
		if p.Name != "" {
			r.touch(srvProtoName(p.Protocol, svcName))
			r.touch(srvName(p.Name, p.Protocol, svcName))
		}
	}
	eps, ports := readyEndpoints(svc, slices)
	weight := uint16(100)
	if len(eps) > 0 {
		weight = uint16(max(1, 100/len(eps)))
	}
	for _, ep := range eps {
		host := ep.hostname + "." + svcName
		r.add(svcName, z.addrRR(svcName, ep.ip))
		r.add(host, z.addrRR(host, ep.ip))
		z.ptr(r, ep.ip, host)
	}
	for _, p := range ports {
		srv := srvName(p.name, p.proto, svcName)
		r.touch(srvProtoName(p.proto, svcName))
		r.touch(srv)
		for _, ep := range eps {
			r.add(srv, &dns.SRV{Hdr: z.hdr(srv, dns.TypeSRV), Priority: 0, Weight: weight, Port: uint16(p.port), Target: ep.hostname + "." + svcName})
		}
	}
	return r
}

func srvName(port string, proto corev1.Protocol, svcName string) string {
	return "_" + strings.ToLower(port) + "." + srvProtoName(proto, svcName)
}

func srvProtoName(proto corev1.Protocol, svcName string) string {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	return "_" + strings.ToLower(string(proto)) + "." + svcName
}

type namedPort struct {
	name  string
	proto corev1.Protocol
	port  int32
}

// readyEndpoints are the distinct ready addresses of the slices (all but
// terminating ones when the Service publishes not-ready addresses), sorted
// by IP, and the slices' named ports.
func readyEndpoints(svc *corev1.Service, slices []*discoveryv1.EndpointSlice) ([]endpoint, []namedPort) {
	seen := map[string]bool{}
	var eps []endpoint
	portSeen := map[namedPort]bool{}
	var ports []namedPort
	for _, sl := range slices {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, p := range sl.Ports {
			if p.Name == nil || *p.Name == "" || p.Port == nil {
				continue
			}
			np := namedPort{name: *p.Name, proto: corev1.ProtocolTCP, port: *p.Port}
			if p.Protocol != nil {
				np.proto = *p.Protocol
			}
			if !portSeen[np] {
				portSeen[np] = true
				ports = append(ports, np)
			}
		}
		for _, e := range sl.Endpoints {
			if !ready(svc, e) {
				continue
			}
			for _, a := range e.Addresses {
				ip := net.ParseIP(a)
				if ip == nil {
					continue
				}
				host := dashed(ip)
				if e.Hostname != nil && *e.Hostname != "" {
					host = strings.ToLower(*e.Hostname)
				}
				key := host + "/" + ip.String()
				if seen[key] {
					continue
				}
				seen[key] = true
				eps = append(eps, endpoint{ip: ip, hostname: host})
			}
		}
	}
	sort.Slice(eps, func(i, j int) bool {
		if c := strings.Compare(eps[i].ip.String(), eps[j].ip.String()); c != 0 {
			return c < 0
		}
		return eps[i].hostname < eps[j].hostname
	})
	sort.Slice(ports, func(i, j int) bool {
		a, b := ports[i], ports[j]
		if a.name != b.name {
			return a.name < b.name
		}
		if a.proto != b.proto {
			return a.proto < b.proto
		}
		return a.port < b.port
	})
	return eps, ports
}

// ready: a nil Ready condition means ready (the EndpointSlice API says so);
// publishNotReadyAddresses (or the old tolerate-unready annotation) admits
// every endpoint that is not terminating.
func ready(svc *corev1.Service, e discoveryv1.Endpoint) bool {
	if e.Conditions.Ready == nil || *e.Conditions.Ready {
		return true
	}
	tolerate := svc.Spec.PublishNotReadyAddresses || svc.Annotations["service.alpha.kubernetes.io/tolerate-unready-endpoints"] == "true"
	return tolerate && (e.Conditions.Terminating == nil || !*e.Conditions.Terminating)
}

// dashed is the system-assigned hostname of an endpoint without one: its IP
// with dashes ("10-0-0-5", "fd00--5"), the same form as pod records.
func dashed(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return strings.ReplaceAll(v4.String(), ".", "-")
	}
	return strings.ReplaceAll(ip.String(), ":", "-")
}

// podIP parses the first label of `<a-b-c-d>.<ns>.pod.<zone>`.
func podIP(label string) net.IP {
	if strings.Count(label, "-") == 3 {
		if ip := net.ParseIP(strings.ReplaceAll(label, "-", ".")); ip != nil && ip.To4() != nil {
			return ip.To4()
		}
	}
	if ip := net.ParseIP(strings.ReplaceAll(label, "-", ":")); ip != nil && ip.To4() == nil {
		return ip
	}
	return nil
}
