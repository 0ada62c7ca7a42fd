package proxy

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

type recordingConntrack struct{ calls [][]flowFilter }

func (r *recordingConntrack) deleteUDP(f []flowFilter) (uint, error) {
	r.calls = append(r.calls, f)
	return uint(len(f)), nil
}

// udp turns every port of the builder's Service and slice into UDP.
func udpSvc(b *svcBuilder) *corev1.Service {
	s := b.obj()
	for i := range s.Spec.Ports {
		s.Spec.Ports[i].Protocol = corev1.ProtocolUDP
	}
	return s
}

func TestStaleFlows(t *testing.T) {
	eps := func(ips ...string) map[string]bool {
		m := map[string]bool{}
		for _, ip := range ips {
			m[ip] = true
		}
		return m
	}
	dns := func(np int32, e map[string]bool) udpService {
		return udpService{"dns": {frontends: []string{"10.96.0.10", "203.0.113.7"}, port: 53, nodePort: np, endpoints: e}}
	}
	for _, tc := range []struct {
		name     string
		old, cur udpService
		want     []flowFilter
	}{
		{"unchanged", dns(0, eps("10.244.0.5")), dns(0, eps("10.244.0.5")), nil},
		{"endpoint removed: its entries on every frontend and the NodePort",
			dns(30053, eps("10.244.0.5", "10.244.0.6")), dns(30053, eps("10.244.0.6")), []flowFilter{
				{origDstIP: "10.96.0.10", origDstPort: 53, replySrcIP: "10.244.0.5"},
				{origDstIP: "203.0.113.7", origDstPort: 53, replySrcIP: "10.244.0.5"},
				{origDstPort: 30053, replySrcIP: "10.244.0.5"},
			}},
		{"endpoint added to a port that had some: nothing stale",
			dns(0, eps("10.244.0.5")), dns(0, eps("10.244.0.5", "10.244.0.6")), nil},
		{"first endpoint: every entry of the port",
			dns(30053, eps()), dns(30053, eps("10.244.0.6")), []flowFilter{
				{origDstIP: "10.96.0.10", origDstPort: 53},
				{origDstIP: "203.0.113.7", origDstPort: 53},
				{origDstPort: 30053},
			}},
		{"new Service with endpoints (or the first sync)", nil, dns(0, eps("10.244.0.6")), []flowFilter{
			{origDstIP: "10.96.0.10", origDstPort: 53},
			{origDstIP: "203.0.113.7", origDstPort: 53},
		}},
		{"Service deleted", dns(0, eps("10.244.0.6")), nil, []flowFilter{
			{origDstIP: "10.96.0.10", origDstPort: 53, replySrcIP: "10.244.0.6"},
			{origDstIP: "203.0.113.7", origDstPort: 53, replySrcIP: "10.244.0.6"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := staleFlows(tc.old, tc.cur); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("staleFlows:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestSyncCleansUDPConntrack(t *testing.T) {
	tp := newTestProxy(t)
	ct := &recordingConntrack{}
	tp.ct = ct
	slice := func(ips ...string) {
		var e []ep
		for _, ip := range ips {
			e = append(e, ready(ip, "n1"))
		}
		s := makeSlice("dns", "dns-1", 5353, e...)
		u := corev1.ProtocolUDP
		s.Ports[0].Protocol = &u
		tp.putSlice(s)
	}
	tp.putSvc(udpSvc(makeSvc("dns").ip("10.96.0.10").port(53)))
	tp.putSvc(makeSvc("web").ip("10.96.0.20").port(80).obj()) // TCP: never cleaned
	tp.putSlice(makeSlice("web", "web-1", 8080, ready("10.244.0.9", "n1")))
	slice("10.244.0.5", "10.244.0.6")
	tp.requeueFull()
	tp.sync()
	if want := [][]flowFilter{{{origDstIP: "10.96.0.10", origDstPort: 53}}}; !reflect.DeepEqual(ct.calls, want) {
		t.Fatalf("first sync: %v, want %v", ct.calls, want)
	}
	ct.calls = nil
	slice("10.244.0.6")
	tp.sync()
	if want := [][]flowFilter{{{origDstIP: "10.96.0.10", origDstPort: 53, replySrcIP: "10.244.0.5"}}}; !reflect.DeepEqual(ct.calls, want) {
		t.Fatalf("after an endpoint left: %v, want %v", ct.calls, want)
	}
	ct.calls = nil
	tp.putSlice(makeSlice("web", "web-1", 8080))
	tp.sync()
	if ct.calls != nil {
		t.Fatalf("a TCP Service's change cleaned conntrack: %v", ct.calls)
	}
}
