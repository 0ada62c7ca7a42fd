package csrcleaner

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"slices"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/internal/controller"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func certPEM(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "system:node:n"},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

type csrB struct {
	c *certificatesv1.CertificateSigningRequest
}

func mk(name string, age time.Duration) csrB {
	return csrB{&certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name),
		CreationTimestamp: metav1.NewTime(now.Add(-age))}}}
}
func (b csrB) cond(t certificatesv1.RequestConditionType, ago time.Duration) csrB {
	b.c.Status.Conditions = append(b.c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: t, Status: corev1.ConditionTrue, LastUpdateTime: metav1.NewTime(now.Add(-ago))})
	return b
}
func (b csrB) cert(pem []byte) csrB { b.c.Status.Certificate = pem; return b }

func TestExpired(t *testing.T) {
	valid, expired := certPEM(t, now.Add(24*time.Hour)), certPEM(t, now.Add(-time.Minute))
	for _, tc := range []struct {
		name    string
		csr     csrB
		goes    bool
		wantErr bool
	}{
		{"pending 23h", mk("a", 23*time.Hour), false, false},
		{"pending 25h", mk("a", 25*time.Hour), true, false},
		{"approved 2h ago, not issued", mk("a", 3*time.Hour).cond(certificatesv1.CertificateApproved, 2*time.Hour), false, false},
		{"issued 30m ago", mk("a", time.Hour).cond(certificatesv1.CertificateApproved, 30*time.Minute).cert(valid), false, false},
		{"issued 61m ago", mk("a", 2*time.Hour).cond(certificatesv1.CertificateApproved, 61*time.Minute).cert(valid), true, false},
		{"issued 1m ago, certificate expired", mk("a", time.Hour).cond(certificatesv1.CertificateApproved, time.Minute).cert(expired), true, false},
		{"certificate without approval is not judged by expiry", mk("a", time.Hour).cert(expired), false, false},
		{"denied 59m ago", mk("a", 2*time.Hour).cond(certificatesv1.CertificateDenied, 59*time.Minute), false, false},
		{"denied 61m ago", mk("a", 2*time.Hour).cond(certificatesv1.CertificateDenied, 61*time.Minute), true, false},
		{"failed 61m ago", mk("a", 2*time.Hour).cond(certificatesv1.CertificateApproved, 62*time.Minute).cond(certificatesv1.CertificateFailed, 61*time.Minute), true, false},
		{"no decision time", mk("a", 48*time.Hour).cond(certificatesv1.CertificateDenied, 0).cond(certificatesv1.CertificateDenied, 0), false, false},
		{"garbage certificate, fresh", mk("a", time.Hour).cond(certificatesv1.CertificateApproved, time.Minute).cert([]byte("junk")), false, true},
		{"garbage certificate, issued 2h ago", mk("a", 3*time.Hour).cond(certificatesv1.CertificateApproved, 2*time.Hour).cert([]byte("junk")), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "no decision time" {
				for i := range tc.csr.c.Status.Conditions {
					tc.csr.c.Status.Conditions[i].LastUpdateTime = metav1.Time{}
				}
			}
			why, err := Expired(tc.csr.c, now)
			if (why != "") != tc.goes || (err != nil) != tc.wantErr {
				t.Errorf("Expired = %q, %v; want deleted %v, error %v", why, err, tc.goes, tc.wantErr)
			}
		})
	}
}

func TestCleanDeletesOnlyExpired(t *testing.T) {
	ctx := context.Background()
	objs := []runtime.Object{
		mk("fresh-pending", time.Hour).c,
		mk("old-pending", 30*time.Hour).c,
		mk("old-denied", 3*time.Hour).cond(certificatesv1.CertificateDenied, 2*time.Hour).c,
		mk("new-issued", time.Hour).cond(certificatesv1.CertificateApproved, 10*time.Minute).cert(certPEM(t, now.Add(time.Hour))).c,
	}
	cs := fake.NewClientset(objs...)
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(&controller.Context{Client: cs, Informers: inf, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return now }
	for _, o := range objs {
		if err := inf.Certificates().V1().CertificateSigningRequests().Informer().GetIndexer().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.clean(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, x := range l.Items {
		left = append(left, x.Name)
	}
	slices.Sort(left)
	if want := []string{"fresh-pending", "new-issued"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}
