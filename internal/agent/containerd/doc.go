// Package containerd supervises the agent's own containerd: it writes a
// config (version 2) under <data-dir>/agent/containerd with its own root,
// state and socket, so several agents can run on one machine; starts
// containerd as a child process, reports readiness once the socket answers
// a CRI Version call, restarts it with back-off when it dies, and stops it
// on shutdown. Containers outlive a containerd restart (their shims keep
// running), as under systemd. With Config.StateTmpfs its state directory
// (and runc's, under it) is a tmpfs of its own (statefs.go); with
// Config.ShimMountNamespaces each shim runs in a mount namespace of its own
// through a wrapper first in containerd's PATH (shimns.go). Both stay
// across restarts; UnmountState removes them for a data dir's clean-up.
//
// It must not talk CRI beyond the readiness probe: pods are the kubelet's.
package containerd
