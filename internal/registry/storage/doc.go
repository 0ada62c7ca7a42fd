// Package storage describes storage.k8s.io/v1 storageclasses: defaults
// (reclaimPolicy Delete, volumeBindingMode Immediate), validation and the
// immutable fields, as upstream. No I/O; the DefaultStorageClass admission
// that reads classes lives in the API server.
package storage
