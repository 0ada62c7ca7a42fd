package netpol

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Names of the fixed objects in the table.
const (
	forwardChain    = "forward"
	ingressChain    = "ingress"
	egressChain     = "egress"
	ingressIsolated = "ingress-isolated"
	egressIsolated  = "egress-isolated"
	selfSet         = "self"
)

// Set types.
const (
	addrType     = "ipv4_addr"
	selfType     = "ipv4_addr . ipv4_addr"
	namedPortTyp = "ipv4_addr . inet_proto . inet_service"
)

// Input is what Compute reads: the cluster's policies, pods and namespaces
// and the node whose pods are enforced.
type Input struct {
	NodeName   string
	Policies   []*networkingv1.NetworkPolicy
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
}

// SetState is one named set: its nftables type and its elements, each the
// element's key as nft prints it ("10.1.0.5", "10.1.0.5 . tcp . 8080").
type SetState struct {
	Type     string
	Elements sets.Set[string]
}

// Rule is one rule of the ingress or egress chain.
type Rule struct {
	Rule    string
	Comment string
}

// State is the desired content of the table apart from its fixed base
// chain: the named sets and the rules of the ingress and egress chains.
type State struct {
	Sets    map[string]*SetState
	Ingress []Rule
	Egress  []Rule
}

// podInfo is a pod that takes part in policy: running or pending with an
// IPv4 address, not on the host network.
type podInfo struct {
	pod   *corev1.Pod
	ips   []string
	local bool
}

// Compute returns the table contents that enforce in.Policies for the
// pods of in.NodeName. It is deterministic: the same input gives the same
// sets and rules in the same order.
func Compute(in Input) *State {
	st := &State{Sets: map[string]*SetState{
		ingressIsolated: {Type: addrType, Elements: sets.New[string]()},
		egressIsolated:  {Type: addrType, Elements: sets.New[string]()},
		selfSet:         {Type: selfType, Elements: sets.New[string]()},
	}}
	nsLabels := map[string]labels.Set{}
	for _, ns := range in.Namespaces {
		nsLabels[ns.Name] = labels.Set(ns.Labels)
	}
	var pods []podInfo
	for _, p := range in.Pods {
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		pi := podInfo{pod: p, local: p.Spec.NodeName == in.NodeName && in.NodeName != ""}
		for _, ip := range podIPs(p) {
			if a, err := netip.ParseAddr(ip); err == nil && a.Is4() {
				pi.ips = append(pi.ips, a.String())
			}
		}
		if len(pi.ips) == 0 {
			continue
		}
		pods = append(pods, pi)
	}
	sort.Slice(pods, func(i, j int) bool {
		return pods[i].pod.Namespace+"/"+pods[i].pod.Name < pods[j].pod.Namespace+"/"+pods[j].pod.Name
	})
	policies := append([]*networkingv1.NetworkPolicy(nil), in.Policies...)
	sort.Slice(policies, func(i, j int) bool {
		return policies[i].Namespace+"/"+policies[i].Name < policies[j].Namespace+"/"+policies[j].Name
	})
	for _, np := range policies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			continue // rejected by validation; nothing sensible to enforce
		}
		var targets []podInfo
		for _, p := range pods {
			if p.local && p.pod.Namespace == np.Namespace && sel.Matches(labels.Set(p.pod.Labels)) {
				targets = append(targets, p)
			}
		}
		c := &policyCompiler{st: st, np: np, id: policyID(np), pods: pods, nsLabels: nsLabels, targets: targets}
		if hasType(np, networkingv1.PolicyTypeIngress) {
			c.direction(true)
		}
		if hasType(np, networkingv1.PolicyTypeEgress) {
			c.direction(false)
		}
	}
	// A pod's traffic to itself matters only where it would be dropped: for
	// isolated pods. Keeping the others out means pods coming and going
	// without policies change nothing in the table (no nft run per pod).
	for _, set := range []string{ingressIsolated, egressIsolated} {
		for ip := range st.Sets[set].Elements {
			st.Sets[selfSet].Elements.Insert(ip + " . " + ip)
		}
	}
	return st
}

func podIPs(p *corev1.Pod) []string {
	var out []string
	for _, ip := range p.Status.PodIPs {
		out = append(out, ip.IP)
	}
	if len(out) == 0 && p.Status.PodIP != "" {
		out = append(out, p.Status.PodIP)
	}
	return out
}

// hasType applies upstream's defaulting for objects stored without
// policyTypes: Ingress always, Egress when egress rules exist.
func hasType(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return t == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	for _, pt := range np.Spec.PolicyTypes {
		if pt == t {
			return true
		}
	}
	return false
}

// policyID is a short stable name part for a policy's sets, so that set
// names stay short whatever the policy's name.
func policyID(np *networkingv1.NetworkPolicy) string {
	h := sha256.Sum256([]byte(np.Namespace + "/" + np.Name))
	return "np-" + hex.EncodeToString(h[:6])
}

type policyCompiler struct {
	st       *State
	np       *networkingv1.NetworkPolicy
	id       string
	pods     []podInfo
	nsLabels map[string]labels.Set
	targets  []podInfo
}

func (c *policyCompiler) set(name, typ string) *SetState {
	s := &SetState{Type: typ, Elements: sets.New[string]()}
	c.st.Sets[name] = s
	return s
}

// direction adds the target set and the rules of one direction.
// Ingress: the destination is a target pod, peers are sources.
// Egress: the source is a target pod, peers are destinations.
func (c *policyCompiler) direction(ingress bool) {
	d, isolated, self, peer := "eg", egressIsolated, "saddr", "daddr"
	if ingress {
		d, isolated, self, peer = "in", ingressIsolated, "daddr", "saddr"
	}
	targetSet := c.set(c.id+"-"+d, addrType)
	for _, p := range c.targets {
		targetSet.Elements.Insert(p.ips...)
		c.st.Sets[isolated].Elements.Insert(p.ips...)
	}
	type ruleSpec struct {
		peers []networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
	}
	var rules []ruleSpec
	if ingress {
		for _, r := range c.np.Spec.Ingress {
			rules = append(rules, ruleSpec{r.From, r.Ports})
		}
	} else {
		for _, r := range c.np.Spec.Egress {
			rules = append(rules, ruleSpec{r.To, r.Ports})
		}
	}
	for i, r := range rules {
		prefix := fmt.Sprintf("%s-%s%d", c.id, d, i)
		peerTerms := c.peerTerms(prefix, peer, r.peers)
		portTerms := c.portTerms(prefix, ingress, r.ports)
		comment := fmt.Sprintf("%s/%s %s[%d]", c.np.Namespace, c.np.Name, map[bool]string{true: "ingress", false: "egress"}[ingress], i)
		for _, pt := range peerTerms {
			for _, ot := range portTerms {
				parts := []string{fmt.Sprintf("ip %s @%s-%s", self, c.id, d)}
				for _, t := range []string{pt, ot} {
					if t != "" {
						parts = append(parts, t)
					}
				}
				rule := Rule{Rule: strings.Join(append(parts, "return"), " "), Comment: comment}
				if ingress {
					c.st.Ingress = append(c.st.Ingress, rule)
				} else {
					c.st.Egress = append(c.st.Egress, rule)
				}
			}
		}
	}
}

// peerTerms returns one match per alternative peer: all selector peers
// share one address set; each ipBlock is a literal CIDR with its excepts.
// No peers means any peer: one empty term.
func (c *policyCompiler) peerTerms(prefix, field string, peers []networkingv1.NetworkPolicyPeer) []string {
	if len(peers) == 0 {
		return []string{""}
	}
	var terms []string
	var selectorPeers []networkingv1.NetworkPolicyPeer
	for _, p := range peers {
		if p.IPBlock != nil {
			if t := ipBlockTerm(field, p.IPBlock); t != "" {
				terms = append(terms, t)
			}
			continue
		}
		selectorPeers = append(selectorPeers, p)
	}
	if len(selectorPeers) > 0 {
		name := prefix + "-peers"
		s := c.set(name, addrType)
		matchers := make([]peerMatcher, 0, len(selectorPeers))
		for _, p := range selectorPeers {
			if m, err := newPeerMatcher(p); err == nil {
				matchers = append(matchers, m)
			}
		}
		for _, p := range c.pods {
			if c.peerMatches(matchers, p.pod) {
				s.Elements.Insert(p.ips...)
			}
		}
		terms = append([]string{fmt.Sprintf("ip %s @%s", field, name)}, terms...)
	}
	return terms
}

// peerMatcher is a selector peer with its selectors parsed; a nil
// selector is absent.
type peerMatcher struct{ ns, pod labels.Selector }

func newPeerMatcher(p networkingv1.NetworkPolicyPeer) (peerMatcher, error) {
	var m peerMatcher
	var err error
	if p.NamespaceSelector != nil {
		if m.ns, err = metav1.LabelSelectorAsSelector(p.NamespaceSelector); err != nil {
			return m, err
		}
	}
	if p.PodSelector != nil {
		if m.pod, err = metav1.LabelSelectorAsSelector(p.PodSelector); err != nil {
			return m, err
		}
	}
	return m, nil
}

// peerMatches: podSelector alone selects pods in the policy's namespace;
// namespaceSelector alone every pod of the selected namespaces; both
// together the selected pods of the selected namespaces.
func (c *policyCompiler) peerMatches(peers []peerMatcher, pod *corev1.Pod) bool {
	for _, peer := range peers {
		if peer.ns != nil {
			if !peer.ns.Matches(c.nsLabels[pod.Namespace]) {
				continue
			}
		} else if pod.Namespace != c.np.Namespace {
			continue
		}
		if peer.pod != nil && !peer.pod.Matches(labels.Set(pod.Labels)) {
			continue
		}
		return true
	}
	return false
}

func ipBlockTerm(field string, b *networkingv1.IPBlock) string {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !cidr.Addr().Is4() {
		return ""
	}
	t := fmt.Sprintf("ip %s %s", field, cidr.Masked())
	var except []string
	for _, e := range b.Except {
		if ep, err := netip.ParsePrefix(e); err == nil && ep.Addr().Is4() {
			except = append(except, ep.Masked().String())
		}
	}
	if len(except) > 0 {
		t += fmt.Sprintf(" ip %s != { %s }", field, strings.Join(except, ", "))
	}
	return t
}

// portTerms returns one match per port. A named port becomes a set of
// (address . protocol . port) of the pods that have a container port of
// that name: the target pods for ingress, every pod for egress (where the
// peer match narrows it further).
func (c *policyCompiler) portTerms(prefix string, ingress bool, ports []networkingv1.NetworkPolicyPort) []string {
	if len(ports) == 0 {
		return []string{""}
	}
	var terms []string
	for j, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		l4 := strings.ToLower(string(proto))
		switch {
		case p.Port == nil:
			terms = append(terms, "meta l4proto "+l4)
		case p.Port.Type == intstr.Int:
			t := fmt.Sprintf("meta l4proto %s th dport %d", l4, p.Port.IntVal)
			if p.EndPort != nil && *p.EndPort > p.Port.IntVal {
				t += "-" + strconv.Itoa(int(*p.EndPort))
			}
			terms = append(terms, t)
		default:
			name := fmt.Sprintf("%s-port%d", prefix, j)
			s := c.set(name, namedPortTyp)
			candidates := c.pods
			if ingress {
				candidates = c.targets
			}
			for _, pi := range candidates {
				if n, ok := namedPort(pi.pod, p.Port.StrVal, proto); ok {
					for _, ip := range pi.ips {
						s.Elements.Insert(fmt.Sprintf("%s . %s . %d", ip, l4, n))
					}
				}
			}
			terms = append(terms, fmt.Sprintf("ip daddr . meta l4proto . th dport @%s", name))
		}
	}
	return terms
}

func namedPort(pod *corev1.Pod, name string, proto corev1.Protocol) (int32, bool) {
	for _, ctr := range pod.Spec.Containers {
		for _, cp := range ctr.Ports {
			pp := cp.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if cp.Name == name && pp == proto {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}
