// Package certificates describes certificates.k8s.io/v1
// certificatesigningrequests: upstream's validation of the request PEM,
// signer name, usages and conditions; the requester's identity stamped
// into spec on create; the status and approval subresources (Approved and
// Denied conditions can only be added, never changed or removed); the
// `kubectl get csr` columns. No I/O; signing and approving are
// controllers (internal/controller/csrsigning, csrapproving).
package certificates
