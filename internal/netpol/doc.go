// Package netpol enforces networking.k8s.io/v1 NetworkPolicies for the pods
// of one node with nftables (sigs.k8s.io/knftables).
//
// It is an API client only: informers on NetworkPolicies, Pods and
// Namespaces. Compute is a pure function from those objects to the desired
// table contents (named sets and two rule chains); the Enforcer applies the
// difference to its own inet table (Config.Table), rebuilt whole at start and
// updated incrementally after: pod churn changes set elements only, policy
// changes rewrite the ingress and egress chains in one transaction.
//
// Where it hooks: an inet "forward" base chain at priority filter (0), that is
// after the Service proxy's DNAT (prerouting, dstnat -100) and before its SNAT
// (postrouting, srcnat 100), so rules see post-DNAT pod addresses and ports and
// the original source, as upstream specifies. Pod-to-pod traffic on the same
// Linux bridge crosses that hook only with br_netfilter and
// net.bridge.bridge-nf-call-iptables=1, which the agent sets (internal/agent bridgeNetfilter).
// Traffic from the node to its pods (probes) is locally generated and never
// reaches the forward hook, and traffic from pods to their node goes to the
// input hook, so both are allowed, as upstream requires. Replies of allowed
// connections pass by conntrack (established, related). IPv4 only.
//
// It must not touch any other nftables table.
package netpol
