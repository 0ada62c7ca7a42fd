// Package kubelet is skiff's node agent for pods: it registers the Node,
// heartbeats its Lease and status, writes the node's CNI config once the
// server assigns a podCIDR, and runs the pods bound to the node through a
// CRI runtime (sandbox, init containers in order, containers), reporting
// their status and finishing their deletion. Before a container starts it
// resolves its environment (env, envFrom, $(VAR) expansion) and sets up the
// pod's volumes under <data-dir>/agent/pods/<uid> (config map, secret and
// downward API files through an atomic writer, refreshed on every sync);
// probe workers (probes.go) feed readiness into the status and kill
// containers that fail liveness or startup probes. Containers get their
// resources as cgroup limits in pod cgroups below upstream's QoS levels
// (resources.go), their usage is read back for the kubelet API's stats
// (stats.go), and they get their security context
// (security.go); lifecycle hooks (hooks.go), termination messages
// (termination.go) and restartable init containers (sidecars.go) follow
// upstream's kubelet.
// Images are pulled through CRI as the pull policy says (images.go), with the
// pod's pull secrets.
//
// State lives in the runtime (sandboxes and containers carry the pod UID in
// their labels) and in the API server, never only in memory: a restarted
// kubelet adopts what runs. It must not start or configure the runtime
// itself (internal/agent/containerd does, registry hosts included).
package kubelet
