package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/internal/controller/csrsigning"
)

func testCA(t *testing.T) *csrsigning.CA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &csrsigning.CA{Cert: cert, Key: key}
}

// issue signs a request for key as the CSR signer would.
func issue(t *testing.T, ca *csrsigning.CA, tmpl *x509.CertificateRequest, key *ecdsa.PrivateKey, usages []certificatesv1.KeyUsage, life time.Duration) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := x509.ParseCertificateRequest(der)
	p, err := ca.Sign(req, usages, life, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRotationDeadline(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &x509.Certificate{NotBefore: start, NotAfter: start.Add(100 * time.Second)}
	for _, tc := range []struct {
		jitter float64
		want   time.Duration
	}{{0, 70 * time.Second}, {0.5, 80 * time.Second}, {1, 90 * time.Second}} {
		if got := rotationDeadline(c, tc.jitter).Sub(start).Round(time.Millisecond); got != tc.want {
			t.Errorf("jitter %v: %v, want %v", tc.jitter, got, tc.want)
		}
	}
}

func TestWriteCertAndKey(t *testing.T) {
	ca := testCA(t)
	key, _ := newKey()
	other, _ := newKey()
	tmpl := clientCertRequest("n1").tmpl
	certPEM := issue(t, ca, tmpl, key, clientCertRequest("n1").usages, time.Hour)
	path := filepath.Join(t.TempDir(), ClientCertFile)
	if err := writeCertAndKey(path, certPEM, other); err == nil {
		t.Fatal("a certificate with another key was written")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file after a refused write: %v", err)
	}
	if err := writeCertAndKey(path, certPEM, key); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	c, err := loadCertAndKey(path)
	if err != nil || c.Leaf.Subject.CommonName != "system:node:n1" {
		t.Fatalf("load: %v %v", err, c)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// signCSRs plays csrapproving and csrsigning against a fake clientset.
func signCSRs(ctx context.Context, t *testing.T, cs *fake.Clientset, ca *csrsigning.CA, life time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
		l, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, c := range l.Items {
			if len(c.Status.Certificate) > 0 {
				continue
			}
			b, _ := pem.Decode(c.Spec.Request)
			req, err := x509.ParseCertificateRequest(b.Bytes)
			if err != nil {
				t.Error(err)
				return
			}
			p, err := ca.Sign(req, c.Spec.Usages, life, time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			c.Status.Certificate = p
			c.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
			cs.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, &c, metav1.UpdateOptions{})
		}
	}
}

func TestClientRotatorRenews(t *testing.T) {
	ca := testCA(t)
	key, _ := newKey()
	path := filepath.Join(t.TempDir(), ClientCertFile)
	r := clientCertRequest("n1")
	if err := writeCertAndKey(path, issue(t, ca, r.tmpl, key, r.usages, 2*time.Second), key); err != nil {
		t.Fatal(err)
	}
	first, _ := loadCertAndKey(path)
	cs := fake.NewClientset()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go signCSRs(ctx, t, cs, ca, time.Hour)
	var rotated atomic.Int32
	rot := &ClientRotator{Path: path, NodeName: "n1", Client: cs, Rotated: func() { rotated.Add(1) }, jitter: func() float64 { return 0 }}
	done := make(chan error, 1)
	go func() { done <- rot.Run(ctx) }()
	for rotated.Load() == 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cur, err := loadCertAndKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 || cur.Leaf.Subject.CommonName != "system:node:n1" {
		t.Fatalf("not renewed: serial %v subject %s", cur.Leaf.SerialNumber, cur.Leaf.Subject)
	}
	if cur.PrivateKey.(*ecdsa.PrivateKey).Equal(key) {
		t.Error("renewal kept the old key")
	}
	if !time.Now().After(rotationDeadline(first.Leaf, 0)) {
		t.Error("renewed before the rotation deadline")
	}
	l, _ := cs.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if len(l.Items) != 1 || l.Items[0].Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName {
		t.Errorf("CSRs %+v", l.Items)
	}
}

func TestClientRotatorLeavesOtherIdentities(t *testing.T) {
	ca := testCA(t)
	key, _ := newKey()
	path := filepath.Join(t.TempDir(), ClientCertFile)
	r := clientCertRequest("other")
	if err := writeCertAndKey(path, issue(t, ca, r.tmpl, key, r.usages, time.Hour), key); err != nil {
		t.Fatal(err)
	}
	rot := &ClientRotator{Path: path, NodeName: "n1", Client: fake.NewClientset()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rot.Run(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("Run: %v (ctx %v), want an immediate nil", err, ctx.Err())
	}
}

func TestServingCertsFollowTheNode(t *testing.T) {
	ca := testCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}, {Type: corev1.NodeHostName, Address: "host-1"}}}}
	cs := fake.NewClientset(node)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go signCSRs(ctx, t, cs, ca, time.Hour)
	dir := t.TempDir()
	s := &servingCerts{path: filepath.Join(dir, ServingCertFile), node: "n1", client: cs, roots: roots, log: testLogger(t), poll: 50 * time.Millisecond}
	if c, _ := s.GetCertificate(nil); c != nil {
		t.Fatal("a certificate before any was issued")
	}
	go s.Run(ctx)
	wait := func(what string, ok func(*x509.Certificate) bool) *x509.Certificate {
		t.Helper()
		for ctx.Err() == nil {
			if c, _ := s.GetCertificate(nil); c != nil && ok(c.Leaf) {
				return c.Leaf
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no serving certificate %s", what)
		return nil
	}
	first := wait("for the node", func(c *x509.Certificate) bool { return true })
	if !sameNames(first, []string{"host-1"}, []net.IP{net.ParseIP("10.0.0.5")}) || !s.usable(first) {
		t.Errorf("first certificate: %v %v, usable %v", first.DNSNames, first.IPAddresses, s.usable(first))
	}
	// A new address: a new certificate.
	node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "192.0.2.9"})
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("with the new address", func(c *x509.Certificate) bool { return len(c.IPAddresses) == 2 })
	// A restart serves the stored certificate at once.
	again := &servingCerts{path: s.path, node: "n1", client: cs, roots: roots, log: testLogger(t), poll: time.Hour}
	ctx2, cancel2 := context.WithCancel(ctx)
	go again.Run(ctx2)
	defer cancel2()
	for ctx.Err() == nil {
		if c, _ := again.GetCertificate(nil); c != nil {
			if len(c.Leaf.IPAddresses) != 2 {
				t.Errorf("restart serves %v", c.Leaf.IPAddresses)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
