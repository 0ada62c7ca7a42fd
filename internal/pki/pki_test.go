package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestCAPersistsAndSignsServingCert(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "skiff-ca")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir, "skiff-ca")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.Equal(again.Cert) {
		t.Fatal("second load created a new CA instead of reusing the stored one")
	}
	if fi, err := os.Stat(filepath.Join(dir, CAKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca key mode: %v %v", fi.Mode(), err)
	}

	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.43.0.1")}
	names := []string{"localhost", "kubernetes.default.svc"}
	pair, err := ca.ServingCert(dir, names, ips)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "kubernetes.default.svc", "10.43.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: ca.Pool()}); err != nil {
			t.Errorf("serving cert does not verify for %s: %v", host, err)
		}
	}
	// Same names: reused. A new name: reissued.
	pair2, _ := ca.ServingCert(dir, names, ips)
	if string(pair2.Certificate[0]) != string(pair.Certificate[0]) {
		t.Error("serving cert reissued although it covers every name")
	}
	pair3, _ := ca.ServingCert(dir, append(names, "other.example"), ips)
	if string(pair3.Certificate[0]) == string(pair.Certificate[0]) {
		t.Error("serving cert not reissued for a new name")
	}
}

func TestWriteKubeconfig(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "skiff-ca")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.kubeconfig")
	if err := ca.WriteKubeconfig(path, "https://127.0.0.1:6443", "admin", []string{"system:masters"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig mode %v, %v", fi.Mode(), err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if leaf.Subject.CommonName != "admin" || len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != "system:masters" {
		t.Errorf("subject = %v", leaf.Subject)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert does not verify: %v", err)
	}
}
