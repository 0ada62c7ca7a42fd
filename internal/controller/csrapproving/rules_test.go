package csrapproving

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
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
			d := Decide(csr, request(t, tc.tmpl))
			if d.Approve != tc.approve {
				t.Fatalf("approve = %v, want %v", d.Approve, tc.approve)
			}
			if d.Approve && d.Message == "" {
				t.Error("no message")
			}
		})
	}
}
