// Package localpath is skiff's local-path provisioner, K3s's
// rancher.io/local-path in the split skiff's architecture suggests: the
// controller manager's persistentvolume controller calls Provision to
// create the PersistentVolume object (a hostPath DirectoryOrCreate under the
// node's local-path directory, with node affinity to that node), the
// kubelet creates the directory when it mounts the volume, and on Delete
// reclaim the kubelet of that node removes the directory and then the
// PersistentVolume's Finalizer. The node publishes its directory in the
// DirAnnotation. EnsureStorageClass creates the default `local-path` class
// at server bootstrap. This package does no I/O on the host itself.
package localpath
