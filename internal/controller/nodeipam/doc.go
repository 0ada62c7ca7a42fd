// Package nodeipam gives every node a distinct spec.podCIDR carved from
// the cluster CIDR (a /24 each by default), remembers the ranges existing
// nodes hold across restarts (they are read back from the Node objects),
// and frees a node's range when the node is deleted.
package nodeipam
