// Package apps describes the apps/v1 resources (deployments, replicasets,
// statefulsets, daemonsets, controllerrevisions): defaults, validation and
// subresources as upstream. No I/O.
package apps
