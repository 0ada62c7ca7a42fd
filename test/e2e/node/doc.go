// Package node tests the node's runtime foundation against a real
// containerd, runc and CNI plugins: the containerd supervisor, the CRI
// client, the images skiff builds offline and their import. It needs root.
package node
