package proxy

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// summary flattens a render into sorted "map key -> value" and
// "chain: rule" lines with the hashed chain names shortened to their
// readable suffix, so the expectations read like the rules.
func summary(r *rendered) []string {
	short := func(s string) string {
		for _, p := range []string{"service-", "external-", "local-", "endpoint-", "affinity-"} {
			for {
				i := strings.Index(s, p)
				if i < 0 || len(s) < i+len(p)+9 || s[i+len(p)+8] != '-' {
					break
				}
				s = s[:i] + strings.TrimSuffix(p, "-") + ":" + s[i+len(p)+9:]
			}
		}
		return s
	}
	var out []string
	for _, e := range r.elements {
		out = append(out, e.set+" "+strings.Join(e.key, " . ")+" -> "+short(strings.Join(e.value, " ")))
	}
	for c, rules := range r.chains {
		for _, rule := range rules {
			out = append(out, short(c)+": "+short(rule))
		}
	}
	for s, t := range r.affinity {
		out = append(out, "set "+short(s)+" timeout "+t.String())
	}
	slices.Sort(out)
	return out
}

func TestRender(t *testing.T) {
	loc := local{cidrs: []string{"10.244.0.0/16"}}
	tests := []struct {
		name    string
		svc     *corev1.Service
		slices  []*discoveryv1.EndpointSlice
		want    []string // every line must be present
		notWant []string // no line may contain these
		exact   int      // if > 0, the number of lines
	}{
		{
			name:   "cluster IP spreads over ready endpoints",
			svc:    makeSvc("web").ip("10.96.0.10").port(80).obj(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"), ready("10.244.0.6", "n2"))},
			want: []string{
				"service-ips 10.96.0.10 . tcp . 80 -> goto service:ns/web/tcp/http",
				"service:ns/web/tcp/http: ip daddr 10.96.0.10 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
				"service:ns/web/tcp/http: numgen random mod 2 vmap { 0 : goto endpoint:ns/web/tcp/http__10.244.0.5/8080 , 1 : goto endpoint:ns/web/tcp/http__10.244.0.6/8080 }",
				"endpoint:ns/web/tcp/http__10.244.0.5/8080: ip saddr 10.244.0.5 jump mark-for-masquerade",
				"endpoint:ns/web/tcp/http__10.244.0.5/8080: meta l4proto tcp dnat to 10.244.0.5:8080",
				"endpoint:ns/web/tcp/http__10.244.0.6/8080: meta l4proto tcp dnat to 10.244.0.6:8080",
			},
			exact: 7,
		},
		{
			name:    "only ready endpoints",
			svc:     makeSvc("web").ip("10.96.0.10").port(80).obj(),
			slices:  []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"), ep{ip: "10.244.0.6", serving: true, terminating: true})},
			want:    []string{"service:ns/web/tcp/http: goto endpoint:ns/web/tcp/http__10.244.0.5/8080"},
			notWant: []string{"10.244.0.6"},
		},
		{
			name: "terminating but serving endpoints are the fallback",
			svc:  makeSvc("web").ip("10.96.0.10").port(80).obj(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080,
				ep{ip: "10.244.0.5", serving: true, terminating: true}, ep{ip: "10.244.0.6", terminating: true}, ep{ip: "10.244.0.7"})},
			want:    []string{"service:ns/web/tcp/http: goto endpoint:ns/web/tcp/http__10.244.0.5/8080"},
			notWant: []string{"10.244.0.6", "10.244.0.7"},
		},
		{
			name:    "no endpoints rejects",
			svc:     makeSvc("web").ip("10.96.0.10").port(80).nodePort(30080).obj(),
			want:    []string{"no-endpoint-services 10.96.0.10 . tcp . 80 -> goto reject-chain", "no-endpoint-nodeports tcp . 30080 -> goto reject-chain"},
			exact:   2,
			notWant: []string{"service:"},
		},
		{
			name: "headless has no rules",
			svc:  makeSvc("db").ip(corev1.ClusterIPNone).port(5432).obj(),
		},
		{
			name: "ExternalName has no rules",
			svc: func() *corev1.Service {
				s := makeSvc("ext").port(80).obj()
				s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.org"
				return s
			}(),
		},
		{
			name:   "NodePort goes through the external chain, masqueraded",
			svc:    makeSvc("web").ip("10.96.0.10").port(80).nodePort(30080).obj(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"))},
			want: []string{
				"service-nodeports tcp . 30080 -> goto external:ns/web/tcp/http",
				"external:ns/web/tcp/http: jump mark-for-masquerade",
				"external:ns/web/tcp/http: goto service:ns/web/tcp/http",
			},
		},
		{
			name:   "LoadBalancer ingress IPs",
			svc:    makeSvc("web").ip("10.96.0.10").port(80).nodePort(30080).lb("203.0.113.10", "203.0.113.11").obj(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"))},
			want: []string{
				"service-ips 203.0.113.10 . tcp . 80 -> goto external:ns/web/tcp/http",
				"service-ips 203.0.113.11 . tcp . 80 -> goto external:ns/web/tcp/http",
				"service-nodeports tcp . 30080 -> goto external:ns/web/tcp/http",
			},
		},
		{
			name:   "session affinity",
			svc:    makeSvc("web").ip("10.96.0.10").port(80).affinity(60).obj(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"), ready("10.244.0.6", "n1"))},
			want: []string{
				"set affinity:ns/web/tcp/http__10.244.0.5/8080__60 timeout 1m0s",
				"service:ns/web/tcp/http: ip saddr @affinity:ns/web/tcp/http__10.244.0.5/8080__60 goto endpoint:ns/web/tcp/http__10.244.0.5/8080",
				"endpoint:ns/web/tcp/http__10.244.0.6/8080: update @affinity:ns/web/tcp/http__10.244.0.6/8080__60 { ip saddr }",
			},
		},
		{
			name: "externalTrafficPolicy Local: local endpoints only, no SNAT",
			svc:  makeSvc("web").ip("10.96.0.10").port(80).nodePort(30080).externalLocal().obj(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"), ready("10.244.1.5", "n2"),
				ready("10.244.0.6", "n1"))},
			want: []string{
				"external:ns/web/tcp/http: ip saddr 10.244.0.0/16 goto service:ns/web/tcp/http",
				"external:ns/web/tcp/http: fib saddr type local jump mark-for-masquerade",
				"external:ns/web/tcp/http: goto local:ns/web/tcp/http",
				"local:ns/web/tcp/http: numgen random mod 2 vmap { 0 : goto endpoint:ns/web/tcp/http__10.244.0.5/8080 , 1 : goto endpoint:ns/web/tcp/http__10.244.0.6/8080 }",
				"service:ns/web/tcp/http: numgen random mod 3 vmap { 0 : goto endpoint:ns/web/tcp/http__10.244.0.5/8080 , 1 : goto endpoint:ns/web/tcp/http__10.244.0.6/8080 , 2 : goto endpoint:ns/web/tcp/http__10.244.1.5/8080 }",
			},
			notWant: []string{"external:ns/web/tcp/http: jump mark-for-masquerade"},
		},
		{
			name:   "externalTrafficPolicy Local without local endpoints drops",
			svc:    makeSvc("web").ip("10.96.0.10").port(80).nodePort(30080).externalLocal().obj(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.1.5", "n2"))},
			want:   []string{`external:ns/web/tcp/http: drop comment "no local endpoints"`},
		},
		{
			name: "externalIPs follow externalTrafficPolicy Local",
			svc: func() *corev1.Service {
				s := makeSvc("web").ip("10.96.0.10").port(80).externalLocal().obj()
				s.Spec.ExternalIPs = []string{"198.51.100.7"}
				return s
			}(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"), ready("10.244.1.5", "n2"))},
			want: []string{
				"service-ips 198.51.100.7 . tcp . 80 -> goto external:ns/web/tcp/http",
				"external:ns/web/tcp/http: goto local:ns/web/tcp/http",
				"local:ns/web/tcp/http: goto endpoint:ns/web/tcp/http__10.244.0.5/8080",
			},
		},
		{
			name:    "internalTrafficPolicy Local",
			svc:     makeSvc("web").ip("10.96.0.10").port(80).internalLocal().obj(),
			slices:  []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"), ready("10.244.1.5", "n2"))},
			want:    []string{"service:ns/web/tcp/http: goto endpoint:ns/web/tcp/http__10.244.0.5/8080"},
			notWant: []string{"10.244.1.5"},
		},
		{
			name:   "internalTrafficPolicy Local without local endpoints drops",
			svc:    makeSvc("web").ip("10.96.0.10").port(80).internalLocal().obj(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.1.5", "n2"))},
			want:   []string{`service:ns/web/tcp/http: drop comment "no local endpoints"`},
		},
		{
			name: "duplicate endpoints across slices count once",
			svc:  makeSvc("web").ip("10.96.0.10").port(80).obj(),
			slices: []*discoveryv1.EndpointSlice{makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1")),
				makeSlice("web", "web-2", 8080, ready("10.244.0.5", "n1"))},
			want: []string{"service:ns/web/tcp/http: goto endpoint:ns/web/tcp/http__10.244.0.5/8080"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summary(renderService(servicePorts(tt.svc, tt.slices, "n1"), loc))
			if tt.want == nil && len(got) != 0 {
				t.Fatalf("want no rules, got:\n%s", strings.Join(got, "\n"))
			}
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, strings.Join(got, "\n"))
				}
			}
			for _, nw := range tt.notWant {
				for _, g := range got {
					if strings.Contains(g, nw) {
						t.Errorf("unexpected %q in %q", nw, g)
					}
				}
			}
			if tt.exact > 0 && len(got) != tt.exact {
				t.Errorf("got %d lines, want %d:\n%s", len(got), tt.exact, strings.Join(got, "\n"))
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no node", Config{Client: nil}, "--kubeconfig"},
		{"bad cidr", Config{Client: fakeClient(), NodeName: "n", ClusterCIDR: "10.0.0.0"}, "--cluster-cidr"},
		{"v6 cidr", Config{Client: fakeClient(), NodeName: "n", ClusterCIDR: "fd00::/64"}, "--cluster-cidr"},
		{"bad table", Config{Client: fakeClient(), NodeName: "n", Table: "a b"}, "--table"},
		{"no node name", Config{Client: fakeClient()}, "--node-name"},
		{"ok", Config{Client: fakeClient(), NodeName: "n", ClusterCIDR: "10.244.0.0/16", Table: "skp-x"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}
