// Package disruption keeps PodDisruptionBudget status current, as
// upstream's disruption controller: from the pods the budget selects it
// computes expectedPods, currentHealthy (Ready, not being deleted, not
// recently evicted), desiredHealthy (from minAvailable or maxUnavailable,
// as a number or a percentage of the scale of the pods' controllers —
// Deployment, ReplicaSet, StatefulSet or ReplicationController),
// disruptionsAllowed and the DisruptionAllowed condition (SufficientPods,
// InsufficientPods, SyncFailed). It drops entries of status.disruptedPods
// once the pod is being deleted or two minutes have passed.
//
// The eviction subresource in the API server is the other half: it reads
// disruptionsAllowed, takes one and records the pod in disruptedPods. This
// package writes only PodDisruptionBudget status.
package disruption
