// Package csrapproving is the CSR approving controller: it approves
// kubelet client certificate requests (signer
// kubernetes.io/kube-apiserver-client-kubelet) whose subject is exactly
// CN=system:node:<name>, O=system:nodes with client usages, when the
// requester is a bootstrap identity (system:bootstrappers) or the node
// itself renewing. Every other request is left for a human, as upstream.
// It stands in for upstream's SubjectAccessReview with these two fixed
// rules until RBAC exists. It never signs.
package csrapproving
