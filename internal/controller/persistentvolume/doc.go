// Package persistentvolume is the PersistentVolume controller (upstream's
// "persistentvolume-binder"): it binds Pending claims to the best-matching
// Available volume (binding.go), provisions volumes for claims of
// local-path classes through internal/controller/localpath, marks volumes
// Released when their claim goes and reclaims them per policy. It is an API
// client only; it never touches a node's disk (the node's kubelet creates
// and removes local-path directories).
package persistentvolume
