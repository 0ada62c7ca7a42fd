// Package csrapproving is the CSR approving controller: it approves
// kubelet client certificate requests (signer
// kubernetes.io/kube-apiserver-client-kubelet) whose subject is exactly
// CN=system:node:<name>, O=system:nodes with client usages, when the
// requester is a bootstrap identity (system:bootstrappers) or the node
// itself renewing. It also approves kubelet serving requests (signer
// kubernetes.io/kubelet-serving, CN=system:node:<name>, O=system:nodes,
// server usages) made by that node or by an administrator
// (system:masters) whose DNS and IP names are all the Node's own name and
// addresses; upstream's controller manager leaves those to a human, K3s
// signs them itself. Every other request is left for a human, as upstream.
// It stands in for upstream's SubjectAccessReview with these fixed rules
// until RBAC exists. It never signs.
package csrapproving
