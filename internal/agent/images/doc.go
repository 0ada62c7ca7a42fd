// Package images puts images into the agent's containerd without a
// registry: it writes OCI image-layout tarballs from a root file system or a
// single binary (pure Go, reproducible: fixed timestamps, root ownership),
// builds skiff's pause image from test/images/pause, and imports tarballs
// (OCI layout or docker-archive) with containerd's ctr into the CRI
// namespace. It must not pull from registries; that is the kubelet's, through
// CRI.
package images
