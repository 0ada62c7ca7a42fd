// Package hollownode simulates nodes without containers, as kubemark's
// hollow kubelet does, so controllers and the scheduler can be tested and
// benchmarked against many nodes on one machine.
//
// It owns, for each simulated node: the Node object (registration and
// status), its Lease in kube-node-lease (heartbeat) and the status of the
// pods bound to it (a simulated pod lifecycle: Running and Ready, optional
// exits and restarts driven by pod annotations, graceful deletion). It talks
// to the cluster only through the API (one shared pod informer, one node
// informer, workqueues).
//
// It must not: run anything (no containers, no network, no volumes), touch
// pods bound to other nodes, write pod specs (only pods/status and the final
// delete, as a kubelet does), or keep package-level state: several Nodes may
// run in one process.
package hollownode
