package dns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// --- builders ---

func service(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, Ports: ports},
	}
	if clusterIP != "" {
		s.Spec.ClusterIPs = []string{clusterIP}
	}
	return s
}

func externalName(ns, name, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
	}
}

func port(name string, n int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: n, Protocol: corev1.ProtocolTCP}
}

type ep struct {
	ip, hostname string
	notReady     bool
}

func slice(ns, svc, name string, portName string, portNum int32, eps ...ep) *discoveryv1.EndpointSlice {
	proto := corev1.ProtocolTCP
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &portNum, Protocol: &proto}},
	}
	for _, e := range eps {
		ready := !e.notReady
		x := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}
		if e.hostname != "" {
			h := e.hostname
			x.Hostname = &h
		}
		sl.Endpoints = append(sl.Endpoints, x)
	}
	return sl
}

// --- harness ---

// fakeUpstream answers example.com. A, big.example. A (too big for UDP:
// truncated, complete over TCP) and NXDOMAIN otherwise, on UDP and TCP.
func fakeUpstream(t testing.TB) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg).SetReply(req)
		q := req.Question[0]
		switch {
		case strings.EqualFold(q.Name, "example.com.") && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("192.0.2.1")})
		case strings.EqualFold(q.Name, "big.example.") && q.Qtype == dns.TypeA:
			for i := range 60 {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, byte(i+1))})
			}
			if w.RemoteAddr().Network() == "udp" {
				m.Truncate(dns.MinMsgSize)
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	pc, l, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	us := &dns.Server{PacketConn: pc, Handler: h}
	ts := &dns.Server{Listener: l, Handler: h}
	go us.ActivateAndServe()
	go ts.ActivateAndServe()
	t.Cleanup(func() { us.Shutdown(); ts.Shutdown() })
	return pc.LocalAddr().String()
}

// startServer runs a Server on loopback over a fake clientset holding objs.
func startServer(t testing.TB, objs ...runtime.Object) (*Server, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	s, err := New(Config{
		Client:     cs,
		ListenAddr: "127.0.0.1:0",
		Upstreams:  []string{fakeUpstream(t)},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10s")
	}
	return s, cs
}

func query(t testing.TB, addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(new(dns.Msg).SetQuestion(name, qtype), addr)
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// rdata renders records without their owner and TTL: "A 10.0.0.1".
func rdata(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		v := strings.TrimPrefix(rr.String(), rr.Header().String())
		out = append(out, dns.TypeToString[rr.Header().Rrtype]+" "+v)
	}
	return out
}

func fixture() []runtime.Object {
	return []runtime.Object{
		service("default", "web", "10.43.0.20", port("http", 80), port("", 8080)),
		service("default", "db", corev1.ClusterIPNone, port("pg", 5432)),
		slice("default", "db", "db-abc", "pg", 5432,
			ep{ip: "10.1.0.5", hostname: "db-0"},
			ep{ip: "10.1.0.6"},
			ep{ip: "10.1.0.7", hostname: "db-2", notReady: true}),
		externalName("default", "ext", "Example.com"),
		externalName("default", "alias", "web.default.svc.cluster.local"),
	}
}

func TestQueries(t *testing.T) {
	s, _ := startServer(t, fixture()...)
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answer  []string
		extra   []string
		soa     bool // SOA in the authority section
		network string
	}{
		{"web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.43.0.20"}, nil, false, ""},
		{"WEB.Default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.43.0.20"}, nil, false, ""},
		{"web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.43.0.20"}, nil, false, "tcp"},
		{"web.default.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil, true, ""},
		{"_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"SRV 0 100 80 web.default.svc.cluster.local."}, []string{"A 10.43.0.20"}, false, ""},
		{"_tcp.web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess, nil, nil, true, ""},
		{"_http._udp.web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeNameError, nil, nil, true, ""},
		{"20.0.43.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR web.default.svc.cluster.local."}, nil, false, ""},
		{"db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.5", "A 10.1.0.6"}, nil, false, ""},
		{"db-0.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.5"}, nil, false, ""},
		{"10-1-0-6.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.6"}, nil, false, ""},
		{"db-2.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil, true, ""},
		{"_PG._tcp.DB.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"SRV 0 50 5432 db-0.db.default.svc.cluster.local.", "SRV 0 50 5432 10-1-0-6.db.default.svc.cluster.local."}, nil, false, ""},
		{"_pg._tcp.db.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"SRV 0 50 5432 db-0.db.default.svc.cluster.local.", "SRV 0 50 5432 10-1-0-6.db.default.svc.cluster.local."},
			[]string{"A 10.1.0.5", "A 10.1.0.6"}, false, ""},
		{"5.0.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR db-0.db.default.svc.cluster.local."}, nil, false, ""},
		{"ext.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME example.com.", "A 192.0.2.1"}, nil, false, ""},
		{"ext.default.svc.cluster.local.", dns.TypeCNAME, dns.RcodeSuccess, []string{"CNAME example.com."}, nil, false, ""},
		{"alias.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME web.default.svc.cluster.local.", "A 10.43.0.20"}, nil, false, ""},
		{"nope.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil, true, ""},
		{"nope.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil, true, ""},
		{"default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, nil, nil, true, ""},
		{"svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, nil, nil, true, ""},
		{"cluster.local.", dns.TypeSOA, dns.RcodeSuccess, []string{"SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"}, nil, false, ""},
		{"dns-version.cluster.local.", dns.TypeTXT, dns.RcodeSuccess, []string{`TXT "1.1.0"`}, nil, false, ""},
		{"10-2-3-4.default.pod.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.2.3.4"}, nil, false, ""},
		{"fd00--5.default.pod.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00::5"}, nil, false, ""},
		{"10-2-3-4.default.pod.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil, true, ""},
		{"default.pod.cluster.local.", dns.TypeA, dns.RcodeSuccess, nil, nil, true, ""},
		{"bogus.default.pod.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, nil, true, ""},
		{"example.com.", dns.TypeA, dns.RcodeSuccess, []string{"A 192.0.2.1"}, nil, false, ""},
		{"example.com.", dns.TypeA, dns.RcodeSuccess, []string{"A 192.0.2.1"}, nil, false, "tcp"},
		{"missing.example.", dns.TypeA, dns.RcodeNameError, nil, nil, false, ""},
		{"1.2.0.192.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, nil, false, ""}, // forwarded
	}
	for _, tt := range tests {
		network := tt.network
		if network == "" {
			network = "udp"
		}
		t.Run(fmt.Sprintf("%s_%s_%s", tt.name, dns.TypeToString[tt.qtype], network), func(t *testing.T) {
			r := query(t, s.Addr(), network, tt.name, tt.qtype)
			if r.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if got := rdata(r.Answer); !slices.Equal(got, tt.answer) && !(len(got) == 0 && len(tt.answer) == 0) {
				t.Errorf("answer %q, want %q", got, tt.answer)
			}
			if tt.extra != nil {
				if got := rdata(r.Extra); !slices.Equal(got, tt.extra) {
					t.Errorf("extra %q, want %q", got, tt.extra)
				}
			}
			hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
			if hasSOA != tt.soa {
				t.Errorf("authority %v, want SOA: %v", r.Ns, tt.soa)
			}
			if len(r.Answer) > 0 && r.Answer[0].Header().Name != tt.name {
				t.Errorf("owner %q, want the query's %q", r.Answer[0].Header().Name, tt.name)
			}
			for _, rr := range r.Answer {
				if dns.IsSubDomain("cluster.local.", rr.Header().Name) && rr.Header().Ttl != 5 {
					t.Errorf("%s: ttl %d, want 5", rr.Header().Name, rr.Header().Ttl)
				}
			}
		})
	}
}

// TestForwardTruncatedRetriesTCP: an upstream answer truncated over UDP is
// fetched again over TCP; a UDP client then gets it truncated to its size,
// an EDNS client with room gets it whole.
func TestForwardTruncatedRetriesTCP(t *testing.T) {
	s, _ := startServer(t)
	r := query(t, s.Addr(), "tcp", "big.example.", dns.TypeA)
	if len(r.Answer) != 60 {
		t.Fatalf("tcp: %d answers, want 60", len(r.Answer))
	}
	m := new(dns.Msg).SetQuestion("big.example.", dns.TypeA)
	m.SetEdns0(4096, false)
	r, _, err := (&dns.Client{Net: "udp", Timeout: 3 * time.Second, UDPSize: 4096}).Exchange(m, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 60 || r.Truncated {
		t.Fatalf("edns udp: %d answers truncated=%v, want 60 whole", len(r.Answer), r.Truncated)
	}
	r = query(t, s.Addr(), "udp", "big.example.", dns.TypeA)
	if !r.Truncated {
		t.Fatalf("plain udp: %d answers, not truncated", len(r.Answer))
	}
}

// TestIncremental: records follow Service and EndpointSlice events.
func TestIncremental(t *testing.T) {
	s, cs := startServer(t, service("default", "db", corev1.ClusterIPNone, port("pg", 5432)))
	ctx := context.Background()
	eventually := func(name string, qtype uint16, rcode int, want ...string) {
		t.Helper()
		var got []string
		var rc int
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			r := query(t, s.Addr(), "udp", name, qtype)
			got, rc = rdata(r.Answer), r.Rcode
			if rc == rcode && (slices.Equal(got, want) || len(got)+len(want) == 0) {
				return
			}
		}
		t.Fatalf("%s: rcode %s answer %q, want %s %q", name, dns.RcodeToString[rc], got, dns.RcodeToString[rcode], want)
	}
	eventually("db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess)            // NODATA: no endpoints yet
	eventually("_pg._tcp.db.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess) // NODATA too

	sl := slice("default", "db", "db-1", "pg", 5432, ep{ip: "10.1.0.5", hostname: "db-0"})
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("db-0.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "A 10.1.0.5")

	sl = slice("default", "db", "db-1", "pg", 5432, ep{ip: "10.1.0.9", hostname: "db-1"})
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("db-1.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "A 10.1.0.9")
	eventually("db-0.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError)
	eventually("5.0.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError) // forwarded: the fake upstream knows nothing

	if _, err := cs.CoreV1().Services("other").Create(ctx, service("other", "api", "10.43.0.99"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("api.other.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "A 10.43.0.99")
	eventually("99.0.43.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "PTR api.other.svc.cluster.local.")
	if err := cs.CoreV1().Services("other").Delete(ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("api.other.svc.cluster.local.", dns.TypeA, dns.RcodeNameError)
	eventually("other.svc.cluster.local.", dns.TypeA, dns.RcodeNameError) // no Service left in the namespace
}

func TestConfigValidate(t *testing.T) {
	cs := fake.NewClientset()
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{ListenAddr: "127.0.0.1:53", Upstreams: []string{"1.1.1.1"}}, "client is required"},
		{Config{Client: cs, ListenAddr: "nope", Upstreams: []string{"1.1.1.1"}}, "--listen"},
		{Config{Client: cs, ListenAddr: ":53", Upstreams: []string{"resolver.example"}}, "--upstream"},
		{Config{Client: cs, ListenAddr: ":53", Upstreams: []string{"1.1.1.1"}, TTL: time.Millisecond}, "--ttl"},
		{Config{Client: cs, ListenAddr: ":53", ResolvConf: "/nonexistent"}, "/nonexistent"},
		{Config{Client: cs, ListenAddr: ":53", Upstreams: []string{"1.1.1.1"}}, ""},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
