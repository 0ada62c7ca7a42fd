package csrapproving

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func request(t *testing.T, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestDecide(t *testing.T) {
	node := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}}
	clientUsages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	boot := []string{"system:bootstrappers", "system:bootstrappers:skiff:agent", "system:authenticated"}
	for _, tc := range []struct {
		name    string
		tmpl    *x509.CertificateRequest
		signer  string
		usages  []certificatesv1.KeyUsage
		user    string
		groups  []string
		approve bool
	}{
		{name: "bootstrapper", tmpl: node, usages: clientUsages, user: "system:bootstrap:abcdef", groups: boot, approve: true},
		{name: "with key encipherment", tmpl: node, user: "system:bootstrap:abcdef", groups: boot, approve: true,
			usages: []certificatesv1.KeyUsage{certificatesv1.UsageKeyEncipherment, certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}},
		{name: "node renewing itself", tmpl: node, usages: clientUsages, user: "system:node:n1", groups: []string{"system:nodes"}, approve: true},
		{name: "node renewing another", tmpl: node, usages: clientUsages, user: "system:node:n2", groups: []string{"system:nodes"}},
		{name: "anyone else", tmpl: node, usages: clientUsages, user: "alice", groups: []string{"system:authenticated"}},
		{name: "other signer", tmpl: node, usages: clientUsages, signer: certificatesv1.KubeAPIServerClientSignerName, user: "system:bootstrap:a", groups: boot},
		{name: "extra organization", tmpl: &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes", "system:masters"}}},
			usages: clientUsages, user: "system:bootstrap:a", groups: boot},
		{name: "not a node", tmpl: &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:nodes"}}},
			usages: clientUsages, user: "system:bootstrap:a", groups: boot},
		{name: "empty node name", tmpl: &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:", Organization: []string{"system:nodes"}}},
			usages: clientUsages, user: "system:bootstrap:a", groups: boot},
		{name: "with a DNS name", tmpl: &x509.CertificateRequest{Subject: node.Subject, DNSNames: []string{"n1"}},
			usages: clientUsages, user: "system:bootstrap:a", groups: boot},
		{name: "server auth", tmpl: node, user: "system:bootstrap:a", groups: boot,
			usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer := tc.signer
			if signer == "" {
				signer = certificatesv1.KubeAPIServerClientKubeletSignerName
			}
			csr := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{
				SignerName: signer, Usages: tc.usages, Username: tc.user, Groups: tc.groups}}
			d := Decide(csr, request(t, tc.tmpl), nil)
			if d.Approve != tc.approve {
				t.Fatalf("approve = %v, want %v", d.Approve, tc.approve)
			}
			if d.Approve && d.Message == "" {
				t.Error("no message")
			}
		})
	}
}

func TestDecideServing(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}, {Type: corev1.NodeHostName, Address: "host-1"}}}}
	subject := pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}
	own := &x509.CertificateRequest{Subject: subject, DNSNames: []string{"host-1", "n1"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.5")}}
	serving := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth}
	self, selfGroups := "system:node:n1", []string{"system:nodes", "system:authenticated"}
	for _, tc := range []struct {
		name    string
		tmpl    *x509.CertificateRequest
		usages  []certificatesv1.KeyUsage
		user    string
		groups  []string
		node    *corev1.Node
		approve bool
	}{
		{name: "node for itself", tmpl: own, usages: serving, user: self, groups: selfGroups, node: node, approve: true},
		{name: "without key encipherment", tmpl: own, user: self, groups: selfGroups, node: node, approve: true,
			usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}},
		{name: "admin-run agent", tmpl: own, usages: serving, user: "admin", groups: []string{"system:masters"}, node: node, approve: true},
		{name: "another node asking", tmpl: own, usages: serving, user: "system:node:n2", groups: selfGroups, node: node},
		{name: "bootstrap identity", tmpl: own, usages: serving, user: "system:bootstrap:a", groups: []string{"system:bootstrappers"}, node: node},
		{name: "no such node", tmpl: own, usages: serving, user: self, groups: selfGroups},
		{name: "another node's IP", tmpl: &x509.CertificateRequest{Subject: subject, IPAddresses: []net.IP{net.ParseIP("10.0.0.6")}},
			usages: serving, user: self, groups: selfGroups, node: node},
		{name: "a foreign DNS name", tmpl: &x509.CertificateRequest{Subject: subject, DNSNames: []string{"kubernetes.default"}},
			usages: serving, user: self, groups: selfGroups, node: node},
		{name: "no names", tmpl: &x509.CertificateRequest{Subject: subject}, usages: serving, user: self, groups: selfGroups, node: node},
		{name: "client usage", tmpl: own, user: self, groups: selfGroups, node: node,
			usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth, certificatesv1.UsageClientAuth}},
		{name: "extra organization", tmpl: &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes", "system:masters"}},
			IPAddresses: []net.IP{net.ParseIP("10.0.0.5")}}, usages: serving, user: self, groups: selfGroups, node: node},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{
				SignerName: certificatesv1.KubeletServingSignerName, Usages: tc.usages, Username: tc.user, Groups: tc.groups}}
			d := Decide(csr, request(t, tc.tmpl), tc.node)
			if d.Approve != tc.approve {
				t.Fatalf("approve = %v, want %v", d.Approve, tc.approve)
			}
		})
	}
}
