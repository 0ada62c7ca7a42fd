package csrapproving

import (
	"crypto/x509"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Upstream's names for node identities.
const (
	NodeUserPrefix = "system:node:"
	NodesGroup     = "system:nodes"
	Bootstrappers  = "system:bootstrappers"
)

// kubelet client usages upstream accepts: with or without key encipherment.
var (
	clientUsages        = sets.New(certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth)
	clientUsagesWithKey = sets.New(certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth)
)

// IsNodeClientCert reports whether req and usages describe a kubelet
// client certificate: subject exactly O=system:nodes, CN=system:node:<name>,
// no subject alternative names, usages digital signature + client auth
// (key encipherment allowed).
func IsNodeClientCert(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) bool {
	if !slices.Equal(req.Subject.Organization, []string{NodesGroup}) {
		return false
	}
	if !strings.HasPrefix(req.Subject.CommonName, NodeUserPrefix) || len(req.Subject.CommonName) == len(NodeUserPrefix) {
		return false
	}
	if len(req.DNSNames) > 0 || len(req.EmailAddresses) > 0 || len(req.IPAddresses) > 0 || len(req.URIs) > 0 {
		return false
	}
	u := sets.New(usages...)
	if len(u) != len(usages) {
		return false
	}
	return u.Equal(clientUsages) || u.Equal(clientUsagesWithKey)
}

// Decision is what the approver does with a request.
type Decision struct {
	Approve bool
	Message string
}

// Decide applies the approval rules to a pending request whose CSR parsed.
func Decide(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest) Decision {
	if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName || !IsNodeClientCert(req, csr.Spec.Usages) {
		return Decision{}
	}
	groups := csr.Spec.Groups
	switch {
	case slices.Contains(groups, Bootstrappers):
		return Decision{Approve: true, Message: "Auto approving kubelet client certificate after SubjectAccessReview."}
	case csr.Spec.Username == req.Subject.CommonName && slices.Contains(groups, NodesGroup):
		return Decision{Approve: true, Message: "Auto approving self kubelet client certificate after SubjectAccessReview."}
	}
	return Decision{}
}
