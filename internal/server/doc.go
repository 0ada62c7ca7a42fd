// Package server wires the control plane of `skiff server`: etcd (embedded
// or external), the API server behind TLS, the cluster's certificates and
// admin kubeconfig, and the objects every cluster starts with. It owns the
// start and stop order, and the process's memory settings (start-up memory
// release, the GC tuner). Components other than the API server reach the
// cluster only through the API, never etcd.
package server
