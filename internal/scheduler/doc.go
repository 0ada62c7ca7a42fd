// Package scheduler assigns pods to nodes, as kube-scheduler does: it
// watches pods and nodes through the API (client-go informers), keeps a
// queue of pods waiting for a node, runs the framework's filter and score
// plugins over a snapshot of the nodes and binds the pod through the
// pods/binding subresource. A pod that fits nowhere may preempt pods of
// lower priority (preemption.go, upstream's DefaultPreemption): it is
// nominated to the node (status.nominatedNodeName), the room stays
// reserved for it against pods of lower priority (nominator.go) while its
// victims terminate. The plugin set and the share of nodes scored come
// from DefaultPlugins or a KubeSchedulerConfiguration file (configfile.go).
// It never touches storage directly.
package scheduler
