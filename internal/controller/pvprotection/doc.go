// Package pvprotection is upstream's pv-protection controller: a
// PersistentVolume carries the kubernetes.io/pv-protection finalizer (the
// API server adds it on create) and, once deleted, keeps it while it is
// Bound to a claim that still exists (the binder does not move a deleted
// volume to Released, so the claim is checked too). It only adds and removes that finalizer.
package pvprotection
