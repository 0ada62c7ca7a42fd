// Package multinode tests the pod network across nodes (issue 6): the
// suite makes two simulated hosts out of network namespaces joined by a
// bridge on this machine, runs `skiff agent` in each with its own
// containerd, and checks pod-to-pod traffic across them without NAT, a
// Service whose pods are on the other node, and cluster DNS on every node.
// Needs root; nothing outside this machine is ever a target.
package multinode
