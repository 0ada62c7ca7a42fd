package csrapproving

import (
	"crypto/x509"
	"net"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Upstream's names for node identities.
const (
	NodeUserPrefix = "system:node:"
	NodesGroup     = "system:nodes"
	Bootstrappers  = "system:bootstrappers"
	Masters        = "system:masters"
)

// kubelet client usages upstream accepts: with or without key encipherment.
var (
	clientUsages         = sets.New(certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth)
	clientUsagesWithKey  = sets.New(certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth)
	servingUsages        = sets.New(certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth)
	servingUsagesWithKey = sets.New(certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth)
)

// nodeSubject reports whether req's subject is exactly
// O=system:nodes, CN=system:node:<name> with a name.
func nodeSubject(req *x509.CertificateRequest) bool {
	return slices.Equal(req.Subject.Organization, []string{NodesGroup}) &&
		strings.HasPrefix(req.Subject.CommonName, NodeUserPrefix) && len(req.Subject.CommonName) > len(NodeUserPrefix)
}

// IsNodeClientCert reports whether req and usages describe a kubelet
// client certificate: subject exactly O=system:nodes, CN=system:node:<name>,
// no subject alternative names, usages digital signature + client auth
// (key encipherment allowed).
func IsNodeClientCert(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) bool {
	if !nodeSubject(req) {
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

// IsNodeServingCert reports whether req and usages describe a kubelet
// serving certificate: subject exactly O=system:nodes,
// CN=system:node:<name>, at least one DNS or IP name and no email or URI
// names, usages digital signature + server auth (key encipherment
// allowed).
func IsNodeServingCert(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) bool {
	if !nodeSubject(req) || len(req.DNSNames)+len(req.IPAddresses) == 0 || len(req.EmailAddresses)+len(req.URIs) > 0 {
		return false
	}
	u := sets.New(usages...)
	if len(u) != len(usages) {
		return false
	}
	return u.Equal(servingUsages) || u.Equal(servingUsagesWithKey)
}

// namesOfNode checks a serving request's names against the node: every DNS
// name is the node's name or one of its Hostname/InternalDNS/ExternalDNS
// addresses, every IP one of its InternalIP/ExternalIP addresses. It
// returns "" when they all are, otherwise the first name that is not.
func namesOfNode(req *x509.CertificateRequest, node *corev1.Node) string {
	dns := sets.New(node.Name)
	ips := sets.New[string]()
	for _, a := range node.Status.Addresses {
		switch a.Type {
		case corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			dns.Insert(a.Address)
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			if ip := net.ParseIP(a.Address); ip != nil {
				ips.Insert(ip.String())
			}
		}
	}
	for _, d := range req.DNSNames {
		if !dns.Has(d) {
			return d
		}
	}
	for _, ip := range req.IPAddresses {
		if !ips.Has(ip.String()) {
			return ip.String()
		}
	}
	return ""
}

// Decision is what the approver does with a request.
type Decision struct {
	Approve bool
	Message string
}

// Decide applies the approval rules to a pending request whose CSR parsed.
// node is the Node a kubelet serving request names (nil when it does not
// exist); client requests do not look at it.
func Decide(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest, node *corev1.Node) Decision {
	if csr.Spec.SignerName == certificatesv1.KubeletServingSignerName {
		return decideServing(csr, req, node)
	}
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

// decideServing approves a kubelet serving request from the node itself,
// or from an administrator (system:masters: an agent run with the admin
// kubeconfig, such as skiff server's own), when every name in it belongs to
// the node. Upstream's controller manager leaves these requests to a human
// or an external approver; K3s signs its kubelets' serving certificates
// itself. Approving only the node's own names keeps a node from getting a
// certificate for another node's address.
func decideServing(csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest, node *corev1.Node) Decision {
	if !IsNodeServingCert(req, csr.Spec.Usages) || node == nil || node.Name != strings.TrimPrefix(req.Subject.CommonName, NodeUserPrefix) {
		return Decision{}
	}
	groups := csr.Spec.Groups
	self := csr.Spec.Username == req.Subject.CommonName && slices.Contains(groups, NodesGroup)
	if !self && !slices.Contains(groups, Masters) {
		return Decision{}
	}
	if namesOfNode(req, node) != "" {
		return Decision{}
	}
	return Decision{Approve: true, Message: "Auto approving kubelet serving certificate: every name in it is the node's own."}
}
