package proxy

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// servicePort is one port of a Service as the proxy sees it: everything the
// rules depend on, so that two equal servicePorts render equal rules.
type servicePort struct {
	namespace, name, portName string
	proto                     string // tcp, udp, sctp
	clusterIP                 string // "" for headless or none
	port                      int32
	nodePort                  int32
	externalIPs               []string // status.loadBalancer.ingress IPs and spec.externalIPs
	affinity                  time.Duration
	externalLocal             bool
	internalLocal             bool
	endpoints                 []endpoint
}

// endpoint is one address:port behind a servicePort.
type endpoint struct {
	ip                          string
	port                        int32
	ready, serving, terminating bool
	local                       bool
}

func (e endpoint) String() string { return e.ip + ":" + itoa(int64(e.port)) }

// servicePorts turns a Service and its EndpointSlices into servicePorts. A
// Service that needs no rules (ExternalName, headless, no IPv4 cluster IP
// and no external IPs) has none.
func servicePorts(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, node string) []servicePort {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	clusterIP := ""
	if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil && ip.Is4() {
		clusterIP = ip.String()
	}
	var external []string
	seen := map[string]bool{}
	addExt := func(s string) {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() && !seen[ip.String()] {
			seen[ip.String()] = true
			external = append(external, ip.String())
		}
	}
	for _, s := range svc.Spec.ExternalIPs {
		addExt(s)
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			addExt(in.IP)
		}
	}
	sort.Strings(external)
	if clusterIP == "" && len(external) == 0 {
		return nil // headless
	}
	var affinity time.Duration
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		secs := int32(corev1.DefaultClientIPServiceAffinitySeconds)
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			secs = *c.ClientIP.TimeoutSeconds
		}
		affinity = time.Duration(secs) * time.Second
	}
	var out []servicePort
	for _, p := range svc.Spec.Ports {
		proto := strings.ToLower(string(p.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		sp := servicePort{
			namespace: svc.Namespace, name: svc.Name, portName: p.Name, proto: proto,
			clusterIP: clusterIP, port: p.Port, externalIPs: external, affinity: affinity,
			// Upstream applies the external policy to every externally
			// reachable Service: NodePort, LoadBalancer or externalIPs.
			externalLocal: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal &&
				(svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer || len(external) > 0),
			internalLocal: svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal,
		}
		if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			sp.nodePort = p.NodePort
		}
		sp.endpoints = sliceEndpoints(slices, p.Name, p.Protocol, node)
		out = append(out, sp)
	}
	return out
}

// sliceEndpoints collects the IPv4 endpoints of the slices' port named
// portName, deduplicated by address:port (a pod may briefly be in two slices;
// the readier entry wins) and sorted.
func sliceEndpoints(slices []*discoveryv1.EndpointSlice, portName string, proto corev1.Protocol, node string) []endpoint {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	byKey := map[string]endpoint{}
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		port := int32(-1)
		for _, sp := range s.Ports {
			name := ""
			if sp.Name != nil {
				name = *sp.Name
			}
			pr := corev1.ProtocolTCP
			if sp.Protocol != nil {
				pr = *sp.Protocol
			}
			if name == portName && pr == proto && sp.Port != nil {
				port = *sp.Port
				break
			}
		}
		if port <= 0 {
			continue
		}
		for _, e := range s.Endpoints {
			// Upstream: a nil ready means ready; nil serving means the value
			// of ready; nil terminating means not terminating.
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			serving := ready
			if e.Conditions.Serving != nil {
				serving = *e.Conditions.Serving
			}
			terminating := e.Conditions.Terminating != nil && *e.Conditions.Terminating
			local := e.NodeName != nil && *e.NodeName == node
			for _, a := range e.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil || !ip.Is4() {
					continue
				}
				ep := endpoint{ip: ip.String(), port: port, ready: ready, serving: serving, terminating: terminating, local: local}
				k := ep.String()
				if old, ok := byKey[k]; ok && (old.ready || !ep.ready && old.serving) {
					continue
				}
				byKey[k] = ep
			}
		}
	}
	eps := make([]endpoint, 0, len(byKey))
	for _, e := range byKey {
		eps = append(eps, e)
	}
	sort.Slice(eps, func(i, j int) bool {
		a, b := netip.MustParseAddr(eps[i].ip), netip.MustParseAddr(eps[j].ip)
		if c := a.Compare(b); c != 0 {
			return c < 0
		}
		return eps[i].port < eps[j].port
	})
	return eps
}

// usable picks the endpoints traffic may go to, as upstream's
// CategorizeEndpoints: the ready ones; when none is ready, the ones that are
// serving and terminating. onlyLocal restricts both to this node's.
func usable(eps []endpoint, onlyLocal bool) []endpoint {
	var ready, fallback []endpoint
	for _, e := range eps {
		if onlyLocal && !e.local {
			continue
		}
		if e.ready {
			ready = append(ready, e)
		} else if e.serving && e.terminating {
			fallback = append(fallback, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return fallback
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
