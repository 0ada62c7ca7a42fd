// Package storage tests persistent volumes end to end: StorageClasses and
// DefaultStorageClass admission, the persistentvolume controller's binding,
// provisioning and reclaim, and the scheduler's VolumeBinding plugin
// against a real server with hollow nodes; and, as root, a local-path
// claim mounted by a real kubelet on containerd.
package storage
