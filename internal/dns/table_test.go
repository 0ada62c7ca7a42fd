package dns

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// TestTableSharedNames: a name two sources contribute to (the PTR of an IP
// two headless Services share, the namespace's empty non-terminal) keeps the
// other's records when one goes.
func TestTableSharedNames(t *testing.T) {
	z := zoneInfo{zone: "cluster.local.", ttl: 5}
	tb := newTable()
	a := z.serviceRecords(service("ns", "a", corev1.ClusterIPNone, port("p", 1)), []*discoveryv1.EndpointSlice{slice("ns", "a", "a1", "p", 1, ep{ip: "10.0.0.1", hostname: "x"})})
	b := z.serviceRecords(service("ns", "b", corev1.ClusterIPNone, port("p", 1)), []*discoveryv1.EndpointSlice{slice("ns", "b", "b1", "p", 1, ep{ip: "10.0.0.1", hostname: "y"})})
	tb.set("ns/a", a)
	tb.set("ns/b", b)
	ptr := func() []string {
		n, _ := tb.lookup("1.0.0.10.in-addr.arpa.")
		return rdata(n[dns.TypePTR])
	}
	if got := ptr(); len(got) != 2 {
		t.Fatalf("PTR %q, want both services' names", got)
	}
	tb.set("ns/a", nil)
	if got := ptr(); len(got) != 1 || got[0] != "PTR y.b.ns.svc.cluster.local." {
		t.Fatalf("PTR after removing a: %q", got)
	}
	if _, ok := tb.lookup("ns.svc.cluster.local."); !ok {
		t.Fatal("namespace name gone while b remains")
	}
	if _, ok := tb.lookup("a.ns.svc.cluster.local."); ok {
		t.Fatal("a still served")
	}
	tb.set("ns/b", nil)
	if tb.size() != 0 {
		t.Fatalf("%d names left, want 0", tb.size())
	}
}

// TestTableScale: 10,000 Services in one namespace build in well under a
// second (the shared namespace name must not make each insert O(n)).
func TestTableScale(t *testing.T) {
	z := zoneInfo{zone: "cluster.local.", ttl: 5}
	tb := newTable()
	start := time.Now()
	for i := range 10000 {
		ip := net.IPv4(10, 43, byte(i/250), byte(i%250+1)).String()
		tb.set(fmt.Sprintf("default/s%d", i), z.serviceRecords(service("default", fmt.Sprintf("s%d", i), ip, port("http", 80)), nil))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("10,000 services took %s", d)
	}
	t.Logf("10,000 services: %s, %d names", time.Since(start), tb.size())
}
