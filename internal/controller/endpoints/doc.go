// Package endpoints keeps the core/v1 Endpoints object of every Service
// with a selector in step with the pods the selector matches, as upstream's
// endpoint controller does: ready pods under addresses, the others under
// notReadyAddresses (all under addresses with publishNotReadyAddresses),
// terminating and IP-less pods left out, ports resolved per pod from each
// Service port's targetPort and packed into subsets, at most 1000 addresses.
// It deletes the Endpoints of a deleted Service and never touches the
// Endpoints of a Service without a selector (they are user-managed).
// It writes only through the API and only when the content changed.
package endpoints
