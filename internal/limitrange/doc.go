// Package limitrange implements LimitRange semantics as upstream's
// LimitRanger admission does: defaulting of LimitRange items, their
// validation, default requests and limits for a new pod's containers, and
// the min/max/ratio checks for pods, containers and claims. It is pure (no
// I/O); the API server reads the namespace's LimitRanges and calls it.
package limitrange
