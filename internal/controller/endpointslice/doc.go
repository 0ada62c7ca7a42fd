// Package endpointslice keeps the discovery.k8s.io/v1 EndpointSlices of
// every Service with a selector in step with the pods the selector matches,
// as upstream's endpointslice controller does: one endpoint per pod with
// ready/serving/terminating conditions, node name and zone (from the node's
// topology.kubernetes.io/zone label), slices grouped by the ports a pod
// resolves, at most MaxEndpointsPerSlice endpoints each, and existing
// slices updated and refilled rather than recreated. It manages only slices
// labelled endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io
// (user slices of selector-less Services are never touched), deletes them
// when their Service goes (without waiting for the garbage collector), and
// writes only through the API.
package endpointslice
