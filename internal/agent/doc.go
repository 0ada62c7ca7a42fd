// Package agent wires the node components of `skiff agent`: the supervised
// containerd (with the pause image and queued image tarballs imported) and
// the kubelet, started in that order and stopped in reverse, then beside the
// kubelet the NetworkPolicy enforcer (internal/netpol), the node's cluster
// DNS server with its kube-dns EndpointSlice (dns.go) and the host-gw routes
// to other nodes' pods (routes.go). It joins with a token through a CSR
// (join.go), keeps the kubelet API's serving certificate from the cluster CA
// (cert_serving.go) and renews the node's client certificate before it
// expires (cert_client.go); it never signs or approves anything itself.
package agent
