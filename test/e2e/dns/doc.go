// Package dns runs a real `skiff server` and a real `skiff agent` (root,
// its own containerd, pod CIDR and bridge) and checks the cluster DNS
// wiring: the kube-dns Service, the agent's DNS server on the pod bridge's
// gateway with its EndpointSlice, and the pods' resolv.conf per dnsPolicy.
package dns
