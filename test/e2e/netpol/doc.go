// Package netpol tests NetworkPolicy enforcement end to end: a real
// `skiff server`, a `skiff agent` with its own containerd, bridge and
// nftables table, busybox pods serving httpd, and clients using wget through
// `kubectl exec` (root); and the API side through kubectl (no root).
package netpol
