// Package pvcprotection is upstream's pvc-protection controller: a
// PersistentVolumeClaim carries the kubernetes.io/pvc-protection finalizer
// (the API server adds it on create) and, once deleted, keeps it while a
// scheduled, non-terminated pod of its namespace uses it (directly or as
// a generic ephemeral volume). It only adds and removes that finalizer.
package pvcprotection
