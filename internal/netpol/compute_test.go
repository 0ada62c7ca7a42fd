package netpol

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/knftables"
)

// builders

func pod(ns, name, node, ip string, lbls map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec:   corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}}
}

func namespace(name string, lbls map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

type policyBuilder struct{ np *networkingv1.NetworkPolicy }

func policy(ns, name string, sel map[string]string, types ...networkingv1.PolicyType) *policyBuilder {
	return &policyBuilder{&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: sel}, PolicyTypes: types}}}
}

func (b *policyBuilder) in(peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) *policyBuilder {
	b.np.Spec.Ingress = append(b.np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports})
	return b
}

func (b *policyBuilder) eg(peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) *policyBuilder {
	b.np.Spec.Egress = append(b.np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports})
	return b
}

func (b *policyBuilder) obj() *networkingv1.NetworkPolicy { return b.np }

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func lbl(kv ...string) map[string]string { return sel(kv...).MatchLabels }

func port(proto corev1.Protocol, p intstr.IntOrString, end int32) networkingv1.NetworkPolicyPort {
	np := networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
	if end != 0 {
		np.EndPort = &end
	}
	return np
}

// rules renders a chain with set names made readable: the policy ID of
// ns/name becomes "ns/name".
func rules(st *State, ingress bool, pols ...*networkingv1.NetworkPolicy) []string {
	rs := st.Egress
	if ingress {
		rs = st.Ingress
	}
	var out []string
	for _, r := range rs {
		out = append(out, readable(r.Rule, pols))
	}
	return out
}

func readable(s string, pols []*networkingv1.NetworkPolicy) string {
	for _, p := range pols {
		s = strings.ReplaceAll(s, policyID(p), p.Namespace+"/"+p.Name)
	}
	return s
}

func elems(st *State, name string, pols ...*networkingv1.NetworkPolicy) []string {
	for _, p := range pols {
		name = strings.ReplaceAll(name, p.Namespace+"/"+p.Name, policyID(p))
	}
	s, ok := st.Sets[name]
	if !ok {
		return []string{"<missing>"}
	}
	return sets.List(s.Elements)
}

func TestCompute(t *testing.T) {
	const node = "n1"
	nss := []*corev1.Namespace{namespace("a", lbl("team", "x")), namespace("b", lbl("team", "y")), namespace("c", nil)}
	http := corev1.ContainerPort{Name: "http", ContainerPort: 8080}
	pods := []*corev1.Pod{
		pod("a", "web", node, "10.0.0.2", lbl("app", "web"), http),
		pod("a", "db", node, "10.0.0.3", lbl("app", "db")),
		pod("a", "remote", "n2", "10.0.1.2", lbl("app", "web"), http),
		pod("b", "client", node, "10.0.0.4", lbl("app", "client")),
		pod("b", "web", "n2", "10.0.1.3", lbl("app", "web"), corev1.ContainerPort{Name: "http", ContainerPort: 9090}),
		pod("c", "other", "n2", "10.0.1.4", lbl("app", "client")),
	}
	done := pod("a", "done", node, "10.0.0.9", lbl("app", "web"))
	done.Status.Phase = corev1.PodSucceeded
	hostnet := pod("a", "hostnet", node, "192.168.1.1", lbl("app", "web"))
	hostnet.Spec.HostNetwork = true
	pending := pod("a", "pending", node, "", lbl("app", "web"))
	pods = append(pods, done, hostnet, pending)

	denyAll := policy("a", "deny", nil, "Ingress").obj()
	fromTeamY := policy("a", "from-y", lbl("app", "web")).in([]networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "y")}}).obj()
	both := policy("a", "both", lbl("app", "db"), "Ingress").in([]networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: sel("team", "y"), PodSelector: sel("app", "client")}, // client in b only
		{PodSelector: sel("app", "web")},                                         // web pods of a
	}).obj()
	onePort := policy("a", "port", lbl("app", "web"), "Ingress").in(nil,
		port(corev1.ProtocolTCP, intstr.FromInt32(8080), 0), port(corev1.ProtocolUDP, intstr.FromInt32(5000), 5010),
		port(corev1.ProtocolTCP, intstr.FromString("http"), 0)).obj()
	egressDeny := policy("b", "egress", nil, "Egress").obj()
	egressNamed := policy("b", "egress-named", nil, "Egress").eg([]networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}},
		port(corev1.ProtocolTCP, intstr.FromString("http"), 0)).obj()
	ipBlock := policy("b", "ipblock", nil, "Egress").eg([]networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/16", Except: []string{"10.0.1.0/24"}}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "fd00::/64"}}}).obj()
	allowAll := policy("a", "all", nil, "Ingress").in([]networkingv1.NetworkPolicyPeer{}).obj()
	noTypes := policy("a", "notypes", nil).eg(nil).obj() // stored without defaults: Ingress and Egress

	for _, tc := range []struct {
		name       string
		pols       []*networkingv1.NetworkPolicy
		isoIn      []string
		isoEg      []string
		ingress    []string
		egress     []string
		sets       map[string][]string
		absentSets []string
		totalRules int
	}{
		{name: "no policies: nothing isolated", isoIn: []string{}, isoEg: []string{}},
		{name: "default deny ingress isolates local pods of the namespace only",
			pols: []*networkingv1.NetworkPolicy{denyAll}, isoIn: []string{"10.0.0.2", "10.0.0.3"}, isoEg: []string{},
			sets: map[string][]string{"a/deny-in": {"10.0.0.2", "10.0.0.3"}}, absentSets: []string{"a/deny-eg"}},
		{name: "namespaceSelector peer, default policyTypes",
			pols: []*networkingv1.NetworkPolicy{fromTeamY}, isoIn: []string{"10.0.0.2"}, isoEg: []string{},
			ingress: []string{"ip daddr @a/from-y-in ip saddr @a/from-y-in0-peers return"},
			sets:    map[string][]string{"a/from-y-in0-peers": {"10.0.0.4", "10.0.1.3"}}},
		{name: "podSelector and namespaceSelector combined, podSelector alone",
			pols: []*networkingv1.NetworkPolicy{both}, isoIn: []string{"10.0.0.3"}, isoEg: []string{},
			ingress: []string{"ip daddr @a/both-in ip saddr @a/both-in0-peers return"},
			sets:    map[string][]string{"a/both-in0-peers": {"10.0.0.2", "10.0.0.4", "10.0.1.2"}}},
		{name: "ports: numeric, range, named resolved per target pod",
			pols: []*networkingv1.NetworkPolicy{onePort}, isoIn: []string{"10.0.0.2"}, isoEg: []string{},
			ingress: []string{
				"ip daddr @a/port-in meta l4proto tcp th dport 8080 return",
				"ip daddr @a/port-in meta l4proto udp th dport 5000-5010 return",
				"ip daddr @a/port-in ip daddr . meta l4proto . th dport @a/port-in0-port2 return"},
			sets: map[string][]string{"a/port-in0-port2": {"10.0.0.2 . tcp . 8080"}}},
		{name: "egress deny: local pods of b isolated for egress",
			pols: []*networkingv1.NetworkPolicy{egressDeny}, isoIn: []string{}, isoEg: []string{"10.0.0.4"}},
		{name: "egress named port resolved on every destination pod",
			pols: []*networkingv1.NetworkPolicy{egressNamed}, isoIn: []string{}, isoEg: []string{"10.0.0.4"},
			egress: []string{"ip saddr @b/egress-named-eg ip daddr @b/egress-named-eg0-peers ip daddr . meta l4proto . th dport @b/egress-named-eg0-port0 return"},
			sets: map[string][]string{"b/egress-named-eg0-port0": {"10.0.0.2 . tcp . 8080", "10.0.1.2 . tcp . 8080", "10.0.1.3 . tcp . 9090"},
				"b/egress-named-eg0-peers": {"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.1.2", "10.0.1.3", "10.0.1.4"}}},
		{name: "ipBlock with except; IPv6 block ignored",
			pols: []*networkingv1.NetworkPolicy{ipBlock}, isoIn: []string{}, isoEg: []string{"10.0.0.4"},
			egress: []string{"ip saddr @b/ipblock-eg ip daddr 10.0.0.0/16 ip daddr != { 10.0.1.0/24 } return"}},
		{name: "empty from allows all; union with deny",
			pols: []*networkingv1.NetworkPolicy{denyAll, allowAll}, isoIn: []string{"10.0.0.2", "10.0.0.3"}, isoEg: []string{},
			ingress: []string{"ip daddr @a/all-in return"}},
		{name: "no policyTypes with egress rules: both directions",
			pols: []*networkingv1.NetworkPolicy{noTypes}, isoIn: []string{"10.0.0.2", "10.0.0.3"}, isoEg: []string{"10.0.0.2", "10.0.0.3"},
			egress: []string{"ip saddr @a/notypes-eg return"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Compute(Input{NodeName: node, Policies: tc.pols, Pods: pods, Namespaces: nss})
			if got := elems(st, ingressIsolated); !slices.Equal(got, tc.isoIn) && !(len(got) == 0 && len(tc.isoIn) == 0) {
				t.Errorf("ingress-isolated %v, want %v", got, tc.isoIn)
			}
			if got := elems(st, egressIsolated); !slices.Equal(got, tc.isoEg) && !(len(got) == 0 && len(tc.isoEg) == 0) {
				t.Errorf("egress-isolated %v, want %v", got, tc.isoEg)
			}
			if got := rules(st, true, tc.pols...); !slices.Equal(got, tc.ingress) {
				t.Errorf("ingress rules\n got %q\nwant %q", got, tc.ingress)
			}
			if got := rules(st, false, tc.pols...); !slices.Equal(got, tc.egress) {
				t.Errorf("egress rules\n got %q\nwant %q", got, tc.egress)
			}
			for name, want := range tc.sets {
				if got := elems(st, name, tc.pols...); !slices.Equal(got, want) {
					t.Errorf("set %s: %v, want %v", name, got, want)
				}
			}
			for _, name := range tc.absentSets {
				if got := elems(st, name, tc.pols...); !slices.Equal(got, []string{"<missing>"}) {
					t.Errorf("set %s exists: %v", name, got)
				}
			}
			// Only isolated pods' own traffic needs the self set.
			isolated := sets.New(elems(st, ingressIsolated)...).Insert(elems(st, egressIsolated)...)
			var wantSelf []string
			for _, ip := range sets.List(isolated) {
				wantSelf = append(wantSelf, ip+" . "+ip)
			}
			if got := elems(st, selfSet); !slices.Equal(got, wantSelf) {
				t.Errorf("self set %v, want %v", got, wantSelf)
			}
		})
	}
}

// TestApplyIncremental checks that pod churn changes elements only and a
// policy change rewrites chains, on knftables' fake.
func TestApplyIncremental(t *testing.T) {
	fake := knftables.NewFake(knftables.InetFamily, "skf-test")
	a := &applier{nft: fake}
	ctx := context.Background()
	nss := []*corev1.Namespace{namespace("a", nil)}
	pods := []*corev1.Pod{pod("a", "web", "n1", "10.0.0.2", lbl("app", "web"))}
	pols := []*networkingv1.NetworkPolicy{policy("a", "p", lbl("app", "web"), "Ingress").in([]networkingv1.NetworkPolicyPeer{{PodSelector: sel()}}).obj()}
	st, err := a.apply(ctx, Compute(Input{NodeName: "n1", Policies: pols, Pods: pods, Namespaces: nss}))
	if err != nil || !st.Full {
		t.Fatalf("first apply: %+v %v", st, err)
	}
	dump := fake.Dump()
	for _, want := range []string{"add chain inet skf-test forward { type filter hook forward priority 0 ; }",
		"add rule inet skf-test forward ct state established,related accept",
		"add element inet skf-test ingress-isolated { 10.0.0.2 }", "add rule inet skf-test ingress drop"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
	// Pod churn: a second web pod and a client → elements only.
	pods = append(pods, pod("a", "web2", "n1", "10.0.0.3", lbl("app", "web")), pod("a", "c", "n2", "10.0.1.9", nil))
	st, err = a.apply(ctx, Compute(Input{NodeName: "n1", Policies: pols, Pods: pods, Namespaces: nss}))
	if err != nil || st.Full || st.ChainsRewritten != 0 || st.Elements != 5 {
		t.Fatalf("pod churn: %+v %v (want 5 elements: isolated, target, 2 peers, self)", st, err)
	}
	// Nothing changed → no transaction.
	if st, err = a.apply(ctx, Compute(Input{NodeName: "n1", Policies: pols, Pods: pods, Namespaces: nss})); err != nil || st.Operations != 0 {
		t.Fatalf("no-op: %+v %v", st, err)
	}
	// Policy deleted → chains rewritten, its sets gone, nothing isolated.
	st, err = a.apply(ctx, Compute(Input{NodeName: "n1", Pods: pods, Namespaces: nss}))
	if err != nil || st.ChainsRewritten != 2 {
		t.Fatalf("policy delete: %+v %v", st, err)
	}
	if sets, _ := fake.List(ctx, "set"); len(sets) != 3 {
		t.Errorf("sets after delete: %v", sets)
	}
	if els, _ := fake.ListElements(ctx, "set", ingressIsolated); len(els) != 0 {
		t.Errorf("ingress-isolated after delete: %v", els)
	}
}

// TestApplyRealNftables loads a computed table into the kernel, so nft
// itself checks the syntax and types of every rule and element.
func TestApplyRealNftables(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft")
	}
	table := fmt.Sprintf("skf-unit-%d", os.Getpid()%100000)
	nft, err := knftables.New(knftables.InetFamily, table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", table).Run() })
	a := &applier{nft: nft}
	ctx := context.Background()
	nss := []*corev1.Namespace{namespace("a", lbl("team", "x"))}
	http := corev1.ContainerPort{Name: "http", ContainerPort: 8080}
	pods := []*corev1.Pod{pod("a", "web", "n1", "10.0.0.2", lbl("app", "web"), http)}
	pols := []*networkingv1.NetworkPolicy{
		policy("a", "p", lbl("app", "web"), "Ingress", "Egress").
			in([]networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "x"), PodSelector: sel()}, {IPBlock: &networkingv1.IPBlock{CIDR: "10.9.0.0/16", Except: []string{"10.9.1.0/24", "10.9.2.0/24"}}}},
				port(corev1.ProtocolTCP, intstr.FromString("http"), 0), port(corev1.ProtocolSCTP, intstr.FromInt32(1000), 2000)).
			eg(nil, networkingv1.NetworkPolicyPort{Protocol: func() *corev1.Protocol { p := corev1.ProtocolUDP; return &p }()}).obj(),
	}
	if _, err := a.apply(ctx, Compute(Input{NodeName: "n1", Policies: pols, Pods: pods, Namespaces: nss})); err != nil {
		t.Fatal(err)
	}
	pods = append(pods, pod("a", "web2", "n1", "10.0.0.3", lbl("app", "web"), http))
	if st, err := a.apply(ctx, Compute(Input{NodeName: "n1", Policies: pols, Pods: pods, Namespaces: nss})); err != nil || st.Full {
		t.Fatalf("incremental: %+v %v", st, err)
	}
	// A new applier (agent restart) rebuilds the table whole.
	a2 := &applier{nft: nft}
	if st, err := a2.apply(ctx, Compute(Input{NodeName: "n1", Pods: pods, Namespaces: nss})); err != nil || !st.Full {
		t.Fatalf("rebuild: %+v %v", st, err)
	}
	out, _ := exec.Command("nft", "list", "table", "inet", table).CombinedOutput()
	t.Logf("%s", out)
	if strings.Contains(string(out), "np-") || !strings.Contains(string(out), "hook forward priority filter") {
		t.Errorf("rebuilt table:\n%s", out)
	}
}

// TestScale logs how long Compute and an incremental apply take for a
// cluster of 2,000 pods (500 on this node) and 200 policies, and checks
// that one new pod costs a handful of element operations.
func TestScale(t *testing.T) {
	var pods []*corev1.Pod
	var nss []*corev1.Namespace
	for ns := range 20 {
		nss = append(nss, namespace(fmt.Sprintf("ns%d", ns), lbl("team", fmt.Sprint(ns%4))))
	}
	http := corev1.ContainerPort{Name: "http", ContainerPort: 8080}
	for i := range 2000 {
		node := "n2"
		if i%4 == 0 {
			node = "n1"
		}
		pods = append(pods, pod(fmt.Sprintf("ns%d", i%20), fmt.Sprintf("p%d", i), node,
			fmt.Sprintf("10.%d.%d.%d", 1+i/65536, i/256%256, i%256), lbl("app", fmt.Sprint(i%10)), http))
	}
	var pols []*networkingv1.NetworkPolicy
	for i := range 200 {
		pols = append(pols, policy(fmt.Sprintf("ns%d", i%20), fmt.Sprintf("pol%d", i), lbl("app", fmt.Sprint(i%10)), "Ingress", "Egress").
			in([]networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", fmt.Sprint(i%4)), PodSelector: sel("app", fmt.Sprint((i+1)%10))}},
				port(corev1.ProtocolTCP, intstr.FromString("http"), 0)).
			eg([]networkingv1.NetworkPolicyPeer{{PodSelector: sel()}, {IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16"}}}).obj())
	}
	in := Input{NodeName: "n1", Policies: pols, Pods: pods, Namespaces: nss}
	start := time.Now()
	st := Compute(in)
	computeTook := time.Since(start)
	n := 0
	for _, s := range st.Sets {
		n += s.Elements.Len()
	}
	a := &applier{nft: knftables.NewFake(knftables.InetFamily, "skf-scale")}
	ctx := context.Background()
	if _, err := a.apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	in.Pods = append(in.Pods, pod("ns0", "new", "n1", "10.9.9.9", lbl("app", "0"), http))
	start = time.Now()
	stats, err := a.apply(ctx, Compute(in))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("2,000 pods, 200 policies: %d sets, %d elements, %d rules; Compute %v; one new local pod: compute+diff %v, %d operations",
		len(st.Sets), n, len(st.Ingress)+len(st.Egress), computeTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), stats.Operations)
	if stats.ChainsRewritten != 0 || stats.Operations > 60 {
		t.Errorf("one pod: %+v", stats)
	}
	if os.Geteuid() != 0 {
		return
	}
	table := fmt.Sprintf("skf-scale-%d", os.Getpid()%100000)
	nft, err := knftables.New(knftables.InetFamily, table)
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", table).Run() })
	real := &applier{nft: nft}
	start = time.Now()
	if _, err := real.apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	full := time.Since(start)
	want := Compute(in)
	start = time.Now()
	if _, err := real.apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	t.Logf("real nft: full load %v, one new local pod %v", full.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
