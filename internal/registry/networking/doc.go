// Package networking describes networking.k8s.io/v1 networkpolicies:
// upstream's defaults (protocol TCP, policyTypes from the rules), validation
// and kube-apiserver's table columns. No I/O; enforcement is internal/netpol.
package networking
