// Package replicaset keeps the number of running pods of each ReplicaSet at
// spec.replicas: it adopts matching orphans, creates missing pods from the
// template (in slow-start batches), deletes surplus pods in upstream's
// order (unscheduled, pending, not ready, … first), and reports status.
// It writes only through the API; expectations keep a lagging pod cache
// from causing duplicate creates.
package replicaset
