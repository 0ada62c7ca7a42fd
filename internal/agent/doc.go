// Package agent wires the node components of `skiff agent`: the supervised
// containerd (with the pause image and queued image tarballs imported) and
// the kubelet, started in that order and stopped in reverse, then beside the
// kubelet the NetworkPolicy enforcer (internal/netpol), the node's cluster
// DNS server with its kube-dns EndpointSlice (dns.go) and the host-gw routes
// to other nodes' pods (routes.go). Joining with a token (CSR flow) is not
// built yet: the agent needs a kubeconfig.
package agent
