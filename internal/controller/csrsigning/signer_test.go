package csrsigning

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

func testCA(t *testing.T, lifetime time.Duration) *CA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(lifetime), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key}
}

func nodeRequest(t *testing.T) *x509.CertificateRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := x509.ParseCertificateRequest(der)
	return req
}

func TestSign(t *testing.T) {
	ca := testCA(t, 10*365*24*time.Hour)
	req := nodeRequest(t)
	usages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	now := time.Now()
	for _, tc := range []struct {
		name     string
		ca       *CA
		duration time.Duration
		want     time.Duration // NotAfter - now
	}{
		{name: "default year", ca: ca, duration: DefaultDuration, want: DefaultDuration},
		{name: "expirationSeconds", ca: ca, duration: time.Hour, want: time.Hour},
		{name: "capped at the CA", ca: testCA(t, 48*time.Hour), duration: DefaultDuration, want: 48 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.ca.Sign(req, usages, tc.duration, now)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := pem.Decode(p)
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if err := cert.CheckSignatureFrom(tc.ca.Cert); err != nil {
				t.Fatal(err)
			}
			if got := cert.NotAfter.Sub(now); got < tc.want-2*time.Minute || got > tc.want+time.Minute {
				t.Errorf("lifetime %v, want %v", got, tc.want)
			}
			if cert.Subject.CommonName != "system:node:n1" || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth ||
				cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 || cert.IsCA {
				t.Errorf("certificate %+v", cert.Subject)
			}
			if !cert.NotBefore.Before(now) {
				t.Error("not backdated")
			}
		})
	}
}

func TestValidateForSigner(t *testing.T) {
	req := nodeRequest(t)
	client := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	if err := ValidateForSigner(certificatesv1.KubeAPIServerClientKubeletSignerName, req, client); err != nil {
		t.Errorf("kubelet client: %v", err)
	}
	if err := ValidateForSigner(certificatesv1.KubeAPIServerClientKubeletSignerName, req,
		[]certificatesv1.KeyUsage{certificatesv1.UsageServerAuth, certificatesv1.UsageDigitalSignature}); err == nil {
		t.Error("server usages accepted for a kubelet client certificate")
	}
	if err := ValidateForSigner(certificatesv1.KubeletServingSignerName, req,
		[]certificatesv1.KeyUsage{certificatesv1.UsageServerAuth, certificatesv1.UsageDigitalSignature}); err == nil {
		t.Error("serving certificate without SANs accepted")
	}
	if err := ValidateForSigner(certificatesv1.KubeAPIServerClientSignerName, req, client); err != nil {
		t.Errorf("client: %v", err)
	}
}

func TestSignable(t *testing.T) {
	c := func(signer string, cert bool, conds ...certificatesv1.RequestConditionType) *certificatesv1.CertificateSigningRequest {
		csr := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{SignerName: signer}}
		for _, ty := range conds {
			csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{Type: ty, Status: corev1.ConditionTrue})
		}
		if cert {
			csr.Status.Certificate = []byte("x")
		}
		return csr
	}
	kubelet := certificatesv1.KubeAPIServerClientKubeletSignerName
	for _, tc := range []struct {
		csr  *certificatesv1.CertificateSigningRequest
		want bool
	}{
		{c(kubelet, false, certificatesv1.CertificateApproved), true},
		{c(kubelet, false), false},
		{c(kubelet, true, certificatesv1.CertificateApproved), false},
		{c(kubelet, false, certificatesv1.CertificateDenied), false},
		{c(kubelet, false, certificatesv1.CertificateApproved, certificatesv1.CertificateFailed), false},
		{c("example.com/custom", false, certificatesv1.CertificateApproved), false},
	} {
		if got := signable(tc.csr); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.csr.Status, got, tc.want)
		}
	}
}

func TestDuration(t *testing.T) {
	secs := func(s int32) *int32 { return &s }
	for _, tc := range []struct {
		name    string
		signing time.Duration
		exp     *int32
		want    time.Duration
	}{
		{name: "signer default", signing: DefaultDuration, want: DefaultDuration},
		{name: "shorter request", signing: DefaultDuration, exp: secs(3600), want: time.Hour},
		{name: "request under the 10 minute minimum", signing: DefaultDuration, exp: secs(60), want: 10 * time.Minute},
		{name: "longer request capped by the signer", signing: time.Hour, exp: secs(7200), want: time.Hour},
		{name: "short signer duration wins over the minimum", signing: 30 * time.Second, exp: secs(60), want: 30 * time.Second},
	} {
		if got := Duration(tc.signing, tc.exp); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestShortLifetimeBackdate(t *testing.T) {
	ca := testCA(t, 24*time.Hour)
	now := time.Now()
	p, err := ca.Sign(nodeRequest(t), []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, 30*time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(p)
	cert, _ := x509.ParseCertificate(b.Bytes)
	// 70% of NotBefore..NotAfter must lie in the future, or a kubelet
	// renews at once.
	if life := cert.NotAfter.Sub(cert.NotBefore); cert.NotBefore.Add(life * 7 / 10).Before(now) {
		t.Errorf("NotBefore %v NotAfter %v: 70%% of the lifetime is already spent at issue", cert.NotBefore, cert.NotAfter)
	}
}
