// Package nodelifecycle watches node health and acts on it as upstream's
// node lifecycle and taint eviction controllers do:
//
//   - a node whose kubelet posted neither status nor a Lease renewal for
//     the grace period (40 s by default) gets Ready=Unknown (reason
//     NodeStatusUnknown) on its conditions;
//   - Ready=False/Unknown nodes carry the node.kubernetes.io/not-ready or
//     unreachable taints (NoSchedule and NoExecute), removed again when the
//     node is Ready;
//   - pods on such nodes are marked not Ready, and pods that do not
//     tolerate a NoExecute taint are deleted — at once, or after their
//     tolerationSeconds (300 s by default, from admission).
//
// Heartbeats are timed with the local clock from when a change was seen,
// so clock skew between nodes and the controller does not matter.
package nodelifecycle
