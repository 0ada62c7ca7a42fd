package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// Names of the table's shared objects.
const (
	mapServiceIPs         = "service-ips"           // ip . proto . port → goto service/external chain
	mapServiceNodePorts   = "service-nodeports"     // proto . port → goto external chain
	mapNoEndpointServices = "no-endpoint-services"  // ip . proto . port → goto reject-chain
	mapNoEndpointNodePort = "no-endpoint-nodeports" // proto . port → goto reject-chain
	setNodePortIPs        = "nodeport-ips"          // the Node's addresses
	chainServices         = "services"
	chainMarkMasq         = "mark-for-masquerade"
	chainMasquerading     = "masquerading"
	chainReject           = "reject-chain"
	chainNoEndpoints      = "no-endpoints-check"
	masqBit               = "0x4000"
)

// element is one map or set element a Service contributes.
type element struct {
	set   string // map name
	key   []string
	value []string
}

func (e element) id() string { return e.set + "|" + strings.Join(e.key, " . ") }

// rendered is everything one Service contributes to the table.
type rendered struct {
	chains   map[string][]string      // chain → rules
	affinity map[string]time.Duration // affinity set → timeout
	elements map[string]element       // by id
}

func newRendered() *rendered {
	return &rendered{chains: map[string][]string{}, affinity: map[string]time.Duration{}, elements: map[string]element{}}
}

func (r *rendered) add(e element) { r.elements[e.id()] = e }

// local is what the rules need to know about this node.
type local struct {
	// cidrs are the pod network(s): sources outside them are masqueraded on
	// their way to a ClusterIP. Empty: masquerade everything.
	cidrs []string
}

// chainName is kube-proxy's naming: a prefix, a hash that makes the name
// unique, and a readable suffix, e.g. "service-ULMVA6XW-ns/web/tcp/http".
func chainName(prefix, readable string) string {
	h := sha256.Sum256([]byte(readable))
	enc := base32.StdEncoding.EncodeToString(h[:])[:8]
	name := prefix + "-" + enc + "-" + readable
	if len(name) > 200 {
		name = name[:200]
	}
	return name
}

func (sp *servicePort) id() string {
	return sp.namespace + "/" + sp.name + "/" + sp.proto + "/" + sp.portName
}

func endpointChain(sp *servicePort, e endpoint) string {
	return chainName("endpoint", sp.id()+"__"+e.ip+"/"+itoa(int64(e.port)))
}

// affinitySet names the timeout too: a new timeout is a new set (and
// rewritten chains), never an in-place change of a set in use.
func affinitySet(sp *servicePort, e endpoint) string {
	return chainName("affinity", sp.id()+"__"+e.ip+"/"+itoa(int64(e.port))+"__"+itoa(int64(sp.affinity/time.Second)))
}

// renderService renders all ports of one Service.
func renderService(ports []servicePort, loc local) *rendered {
	r := newRendered()
	for i := range ports {
		renderPort(r, &ports[i], loc)
	}
	return r
}

func renderPort(r *rendered, sp *servicePort, loc local) {
	id := sp.id()
	svcChain := chainName("service", id)
	extChain := chainName("external", id)
	localChain := chainName("local", id)
	port := itoa(int64(sp.port))

	all := usable(sp.endpoints, false)
	localEps := usable(sp.endpoints, true)
	internal := all
	if sp.internalLocal {
		internal = localEps
	}
	anyEndpoints := len(all) > 0
	hasExternal := sp.nodePort > 0 || len(sp.externalIPs) > 0

	// Endpoint chains for every endpoint any path may use.
	used := map[string]endpoint{}
	for _, e := range internal {
		used[e.String()] = e
	}
	if hasExternal {
		for _, e := range all {
			used[e.String()] = e
		}
	}
	for _, e := range used {
		rules := []string{fmt.Sprintf("ip saddr %s jump %s", e.ip, chainMarkMasq)} // hairpin
		if sp.affinity > 0 {
			set := affinitySet(sp, e)
			r.affinity[set] = sp.affinity
			rules = append(rules, fmt.Sprintf("update @%s { ip saddr }", set))
		}
		rules = append(rules, fmt.Sprintf("meta l4proto %s dnat to %s", sp.proto, e.String()))
		r.chains[endpointChain(sp, e)] = rules
	}

	// The cluster path (ClusterIP, and external traffic with policy Cluster).
	if anyEndpoints {
		var rules []string
		if sp.clusterIP != "" {
			if len(loc.cidrs) == 0 {
				rules = append(rules, fmt.Sprintf("ip daddr %s jump %s", sp.clusterIP, chainMarkMasq))
			} else {
				// One CIDR without braces: an anonymous set per chain would
				// make every later nft run load 1,000s of sets.
				cidrs := loc.cidrs[0]
				if len(loc.cidrs) > 1 {
					cidrs = "{ " + strings.Join(loc.cidrs, ", ") + " }"
				}
				rules = append(rules, fmt.Sprintf("ip daddr %s ip saddr != %s jump %s", sp.clusterIP, cidrs, chainMarkMasq))
			}
		}
		if len(internal) == 0 {
			// internalTrafficPolicy Local and no local endpoint: upstream drops.
			rules = append(rules, `drop comment "no local endpoints"`)
		} else {
			rules = append(rules, balance(sp, internal)...)
		}
		r.chains[svcChain] = rules
	}

	if hasExternal && anyEndpoints {
		var rules []string
		if !sp.externalLocal {
			rules = append(rules, "jump "+chainMarkMasq, "goto "+svcChain)
		} else {
			// Pods and the node itself reach the Service as if by its
			// ClusterIP; outside traffic only local endpoints, unmasqueraded.
			for _, c := range loc.cidrs {
				rules = append(rules, fmt.Sprintf("ip saddr %s goto %s", c, svcChain))
			}
			rules = append(rules, "fib saddr type local jump "+chainMarkMasq, "fib saddr type local goto "+svcChain)
			if len(localEps) == 0 {
				rules = append(rules, `drop comment "no local endpoints"`)
			} else {
				rules = append(rules, "goto "+localChain)
				r.chains[localChain] = balance(sp, localEps)
			}
		}
		r.chains[extChain] = rules
	}

	// Map elements.
	reject := []string{"goto " + chainReject}
	if sp.clusterIP != "" {
		key := []string{sp.clusterIP, sp.proto, port}
		if anyEndpoints {
			r.add(element{set: mapServiceIPs, key: key, value: []string{"goto " + svcChain}})
		} else {
			r.add(element{set: mapNoEndpointServices, key: key, value: reject})
		}
	}
	for _, ip := range sp.externalIPs {
		key := []string{ip, sp.proto, port}
		if anyEndpoints {
			r.add(element{set: mapServiceIPs, key: key, value: []string{"goto " + extChain}})
		} else {
			r.add(element{set: mapNoEndpointServices, key: key, value: reject})
		}
	}
	if sp.nodePort > 0 {
		key := []string{sp.proto, itoa(int64(sp.nodePort))}
		if anyEndpoints {
			r.add(element{set: mapServiceNodePorts, key: key, value: []string{"goto " + extChain}})
		} else {
			r.add(element{set: mapNoEndpointNodePort, key: key, value: reject})
		}
	}
}

// balance is the rules that pick one of eps: the client's affinity entry
// first, else a random one (numgen random mod N, as kube-proxy).
func balance(sp *servicePort, eps []endpoint) []string {
	var rules []string
	if sp.affinity > 0 {
		for _, e := range eps {
			rules = append(rules, fmt.Sprintf("ip saddr @%s goto %s", affinitySet(sp, e), endpointChain(sp, e)))
		}
	}
	if len(eps) == 1 {
		return append(rules, "goto "+endpointChain(sp, eps[0]))
	}
	vm := make([]string, len(eps))
	for i, e := range eps {
		vm[i] = fmt.Sprintf("%d : goto %s", i, endpointChain(sp, e))
	}
	return append(rules, fmt.Sprintf("numgen random mod %d vmap { %s }", len(eps), strings.Join(vm, " , ")))
}

// writeBase adds the table's shared chains, maps and sets to tx.
func writeBase(tx *knftables.Transaction, table string, nodeIPs []string) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff Service proxy")})
	base := func(name string, typ knftables.BaseChainType, hook knftables.BaseChainHook, prio knftables.BaseChainPriority, rules ...string) {
		tx.Add(&knftables.Chain{Name: name, Type: &typ, Hook: &hook, Priority: &prio})
		for _, r := range rules {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}
	for _, c := range []string{chainServices, chainMarkMasq, chainMasquerading, chainReject, chainNoEndpoints} {
		tx.Add(&knftables.Chain{Name: c})
	}
	tx.Add(&knftables.Map{Name: mapServiceIPs, Type: "ipv4_addr . inet_proto . inet_service : verdict"})
	tx.Add(&knftables.Map{Name: mapServiceNodePorts, Type: "inet_proto . inet_service : verdict"})
	tx.Add(&knftables.Map{Name: mapNoEndpointServices, Type: "ipv4_addr . inet_proto . inet_service : verdict"})
	tx.Add(&knftables.Map{Name: mapNoEndpointNodePort, Type: "inet_proto . inet_service : verdict"})
	tx.Add(&knftables.Set{Name: setNodePortIPs, Type: "ipv4_addr"})
	for _, ip := range nodeIPs {
		tx.Add(&knftables.Element{Set: setNodePortIPs, Key: []string{ip}})
	}

	rules := map[string][]string{
		chainServices: {
			"ip daddr . meta l4proto . th dport vmap @" + mapServiceIPs,
			"ip daddr @" + setNodePortIPs + " meta l4proto . th dport vmap @" + mapServiceNodePorts,
		},
		chainMarkMasq: {"meta mark set meta mark or " + masqBit},
		chainMasquerading: {
			"meta mark & " + masqBit + " == 0 return",
			"meta mark set meta mark xor " + masqBit,
			"masquerade fully-random",
		},
		// ICMP port unreachable for UDP and the rest; a TCP reset for TCP:
		// either way the client sees "connection refused" at once.
		chainReject: {"meta l4proto tcp reject with tcp reset", "reject"},
		chainNoEndpoints: {
			"ip daddr . meta l4proto . th dport vmap @" + mapNoEndpointServices,
			"ip daddr @" + setNodePortIPs + " meta l4proto . th dport vmap @" + mapNoEndpointNodePort,
		},
	}
	for _, c := range []string{chainServices, chainMarkMasq, chainMasquerading, chainReject, chainNoEndpoints} {
		for _, r := range rules[c] {
			tx.Add(&knftables.Rule{Chain: c, Rule: r})
		}
	}
	check := "ct state new jump " + chainNoEndpoints
	// Filter chains run before DNAT on output (priority below dstnat) and
	// after it on input/forward, so only unDNATed (endpoint-less) traffic is
	// rejected.
	base("filter-input", knftables.FilterType, knftables.InputHook, knftables.DNATPriority+"-10", check)
	base("filter-forward", knftables.FilterType, knftables.ForwardHook, knftables.DNATPriority+"-10", check)
	base("filter-output", knftables.FilterType, knftables.OutputHook, knftables.DNATPriority+"-10", check)
	base("nat-prerouting", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority, "jump "+chainServices)
	base("nat-output", knftables.NATType, knftables.OutputHook, knftables.DNATPriority, "jump "+chainServices)
	base("nat-postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority, "jump "+chainMasquerading)
}

// writeRendered adds everything of r to tx (for a table built from scratch).
func writeRendered(tx *knftables.Transaction, r *rendered) {
	writeDiff(tx, nil, r)
}

// writeDiff turns old into new with the fewest operations: new sets and
// chains first, rewritten chains flushed and refilled, elements deleted or
// added, and then what is gone flushed and deleted (nothing references it by
// then).
func writeDiff(tx *knftables.Transaction, old, new *rendered) {
	if old == nil {
		old = newRendered()
	}
	if new == nil {
		new = newRendered()
	}
	for _, name := range sortedKeys(new.affinity) {
		if _, ok := old.affinity[name]; !ok {
			to := new.affinity[name]
			tx.Add(&knftables.Set{Name: name, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}, Timeout: &to})
		}
	}
	var changed []string
	for _, name := range sortedKeys(new.chains) {
		if o, ok := old.chains[name]; !ok || !equal(o, new.chains[name]) {
			tx.Add(&knftables.Chain{Name: name})
			if ok {
				tx.Flush(&knftables.Chain{Name: name})
			}
			changed = append(changed, name)
		}
	}
	// Rules after all chains exist, since they jump to each other.
	for _, name := range changed {
		for _, rule := range new.chains[name] {
			tx.Add(&knftables.Rule{Chain: name, Rule: rule})
		}
	}
	for _, id := range sortedKeys(old.elements) {
		o := old.elements[id]
		if n, ok := new.elements[id]; !ok || !equal(o.value, n.value) {
			tx.Delete(&knftables.Element{Map: o.set, Key: o.key, Value: o.value})
		}
	}
	for _, id := range sortedKeys(new.elements) {
		n := new.elements[id]
		if o, ok := old.elements[id]; !ok || !equal(o.value, n.value) {
			tx.Add(&knftables.Element{Map: n.set, Key: n.key, Value: n.value})
		}
	}
	var gone []string
	for _, name := range sortedKeys(old.chains) {
		if _, ok := new.chains[name]; !ok {
			gone = append(gone, name)
			tx.Flush(&knftables.Chain{Name: name})
		}
	}
	for _, name := range gone {
		tx.Delete(&knftables.Chain{Name: name})
	}
	for _, name := range sortedKeys(old.affinity) {
		if _, ok := new.affinity[name]; !ok {
			tx.Delete(&knftables.Set{Name: name})
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// EndpointChain names the chain that DNATs a Service port's traffic to
// ip:port (proto is tcp, udp or sctp), for tests and the bench that look for
// a rule in the kernel.
func EndpointChain(namespace, name, proto, portName, ip string, port int32) string {
	sp := servicePort{namespace: namespace, name: name, proto: proto, portName: portName}
	return endpointChain(&sp, endpoint{ip: ip, port: port})
}
