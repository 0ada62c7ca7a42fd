// Package agent wires the node components of `skiff agent`: the supervised
// containerd (with the pause image and queued image tarballs imported) and
// the kubelet with the NetworkPolicy enforcer (internal/netpol) beside it,
// started in that order and stopped in reverse. It owns no
// logic of its own; joining with a token (CSR flow) is not built yet: the
// agent needs a kubeconfig.
package agent
