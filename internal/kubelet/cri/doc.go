// Package cri is the kubelet's client of a CRI v1 runtime (containerd,
// CRI-O) over a unix socket: the runtime and image services, each call
// bounded by a timeout. It translates nothing: callers build CRI requests
// themselves. It must not start, configure or supervise the runtime; that is
// internal/agent/containerd.
package cri
