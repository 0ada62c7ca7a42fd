// Package replicationcontroller runs core/v1 ReplicationControllers with
// the ReplicaSet controller, as upstream does: it only converts
// ReplicationControllers to ReplicaSets (a set-based selector from the
// equality selector) and status back. Pods get a ReplicationController
// controller reference.
package replicationcontroller
