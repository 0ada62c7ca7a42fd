// Package endpointutil holds what the endpoints and endpointslice
// controllers share: which pods belong in a Service's endpoints and how a
// pod's address and ports are derived (upstream's ShouldPodBeInEndpoints,
// ShouldSetHostname, FindPort), which Services a pod change concerns, and
// the last-change trigger-time tracker. It reads objects only; it never
// talks to the API.
package endpointutil
