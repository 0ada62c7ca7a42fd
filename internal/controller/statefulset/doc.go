// Package statefulset runs StatefulSets as upstream does: pods with stable
// names <set>-<ordinal>, hostnames under spec.serviceName and one
// PersistentVolumeClaim per volumeClaimTemplate and ordinal (created before
// the pod, kept or deleted per persistentVolumeClaimRetentionPolicy);
// OrderedReady creation in ordinal order and removal in reverse, or
// Parallel; RollingUpdate from the highest ordinal down to the partition
// (maxUnavailable at a time) or OnDelete; and ControllerRevisions as the
// rollout history. It writes only through the API.
package statefulset
