// Package daemonset runs one pod of each DaemonSet on every node it fits
// (nodeSelector, required node affinity, taints against its tolerations
// plus upstream's default daemon tolerations). Pods are created with a
// required node affinity to their node and bound by the scheduler, as
// upstream. It rolls template changes out node by node (maxUnavailable,
// maxSurge) or waits for deletions (OnDelete), keeps ControllerRevisions as
// the rollout history, removes pods from nodes that stopped fitting or are
// gone, and reports status. It writes only through the API.
package daemonset
