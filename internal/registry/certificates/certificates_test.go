package certificates

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/apiserver/authn"
)

func csrPEM(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// makeCSR is a valid request; edit adjusts it.
func makeCSR(t *testing.T, edit func(*certificatesv1.CertificateSigningRequest)) *certificatesv1.CertificateSigningRequest {
	c := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Spec: certificatesv1.CertificateSigningRequestSpec{Request: csrPEM(t), SignerName: KubeAPIServerClientKubeletSigner,
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}}}
	if edit != nil {
		edit(c)
	}
	return c
}

func TestValidateCreate(t *testing.T) {
	short := int32(599)
	for _, tc := range []struct {
		name string
		edit func(*certificatesv1.CertificateSigningRequest)
		want string // substring of the aggregated error; "" means valid
	}{
		{name: "valid"},
		{name: "custom signer", edit: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.SignerName = "example.com/custom" }},
		{name: "not PEM", edit: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Request = []byte("hello") },
			want: "spec.request: Invalid value: PEM block type must be CERTIFICATE REQUEST"},
		{name: "wrong block", edit: func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Request = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})
		}, want: "PEM block type must be CERTIFICATE REQUEST"},
		{name: "no signer", edit: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.SignerName = "" }, want: "spec.signerName: Required value"},
		{name: "signer without path", edit: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.SignerName = "example.com" },
			want: "must be a fully qualified domain and path"},
		{name: "legacy signer", edit: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.SignerName = LegacyUnknownSigner },
			want: "the legacy signerName is not allowed"},
		{name: "no usages", edit: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Usages = nil }, want: "spec.usages: Required value"},
		{name: "unknown usage", edit: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Usages = []certificatesv1.KeyUsage{"flying"} },
			want: `spec.usages[0]: Unsupported value: "flying"`},
		{name: "duplicate usage", edit: func(c *certificatesv1.CertificateSigningRequest) {
			c.Spec.Usages = []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth, certificatesv1.UsageClientAuth}
		}, want: "spec.usages[1]: Duplicate value"},
		{name: "short expiration", edit: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.ExpirationSeconds = &short },
			want: "may not specify a duration less than 600 seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateCreate(makeCSR(t, tc.edit))
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs.ToAggregate())
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Fatalf("errors %v, want %q", errs.ToAggregate(), tc.want)
			}
		})
	}
}

func cond(t certificatesv1.RequestConditionType) certificatesv1.CertificateSigningRequestCondition {
	return certificatesv1.CertificateSigningRequestCondition{Type: t, Status: corev1.ConditionTrue}
}

func TestApprovalRules(t *testing.T) {
	approved := makeCSR(t, func(c *certificatesv1.CertificateSigningRequest) {
		c.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved)}
	})
	for _, tc := range []struct {
		name  string
		conds []certificatesv1.CertificateSigningRequestCondition
		want  string
	}{
		{name: "keep", conds: []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved)}},
		{name: "remove", conds: nil, want: `updates may not remove a condition of type "Approved"`},
		{name: "deny too", conds: []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved), cond(certificatesv1.CertificateDenied)},
			want: "Approved and Denied conditions are mutually exclusive"},
		{name: "duplicate", conds: []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved), cond(certificatesv1.CertificateApproved)},
			want: "Duplicate value"},
		{name: "flip", conds: []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionFalse}},
			want: `updates may not modify a condition of type "Approved"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := approved.DeepCopy()
			next.Status.Conditions = tc.conds
			errs := ValidateApprovalUpdate(next, approved)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected: %v", errs.ToAggregate())
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Fatalf("errors %v, want %q", errs.ToAggregate(), tc.want)
			}
		})
	}
}

func TestStrategies(t *testing.T) {
	res := Resources()[0]
	ctx := authn.WithUser(context.Background(), &authn.User{Name: "system:bootstrap:abcdef", Groups: []string{"system:bootstrappers", "system:authenticated"}})
	c := makeCSR(t, func(c *certificatesv1.CertificateSigningRequest) {
		c.Spec.Username = "forged"
		c.Status.Certificate = []byte("x")
	})
	res.Strategy.PrepareForCreate(ctx, c)
	if c.Spec.Username != "system:bootstrap:abcdef" || len(c.Spec.Groups) != 2 || len(c.Status.Certificate) != 0 {
		t.Errorf("create: spec %+v status %+v", c.Spec, c.Status)
	}

	// Status writes keep approval conditions; approval writes keep the certificate.
	old := c.DeepCopy()
	old.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved)}
	next := old.DeepCopy()
	next.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateFailed}}
	next.Spec.SignerName = "example.com/changed"
	st := res.Subresources["status"].Strategy
	st.Default(next)
	st.PrepareForUpdate(ctx, next, old)
	if next.Spec.SignerName != old.Spec.SignerName || len(next.Status.Conditions) != 2 ||
		next.Status.Conditions[0].Type != certificatesv1.CertificateApproved || next.Status.Conditions[1].Status != corev1.ConditionTrue ||
		next.Status.Conditions[1].LastUpdateTime.IsZero() {
		t.Errorf("status update: %+v", next.Status.Conditions)
	}
	withCert := old.DeepCopy()
	withCert.Status.Certificate = []byte("cert")
	ap := withCert.DeepCopy()
	ap.Status.Certificate = nil
	res.Subresources["approval"].Strategy.PrepareForUpdate(ctx, ap, withCert)
	if string(ap.Status.Certificate) != "cert" {
		t.Errorf("approval dropped the certificate")
	}
	bad := withCert.DeepCopy()
	bad.Status.Certificate = []byte("other")
	if errs := ValidateStatusUpdate(bad, withCert); len(errs) == 0 {
		t.Errorf("certificate changed without error")
	}
}

func TestConditionColumn(t *testing.T) {
	for _, tc := range []struct {
		conds []certificatesv1.RequestConditionType
		cert  bool
		want  string
	}{
		{want: "Pending"},
		{conds: []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved}, want: "Approved"},
		{conds: []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved}, cert: true, want: "Approved,Issued"},
		{conds: []certificatesv1.RequestConditionType{certificatesv1.CertificateDenied}, want: "Denied"},
		{conds: []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateFailed}, want: "Approved,Failed"},
	} {
		c := &certificatesv1.CertificateSigningRequest{}
		for _, ty := range tc.conds {
			c.Status.Conditions = append(c.Status.Conditions, cond(ty))
		}
		if tc.cert {
			c.Status.Certificate = []byte("x")
		}
		if got := Condition(c); got != tc.want {
			t.Errorf("%v cert=%v: %q, want %q", tc.conds, tc.cert, got, tc.want)
		}
	}
	cells, err := Table().Cells(makeCSR(t, nil))
	if err != nil || len(cells) != len(Table().ColumnDefinitions()) || cells[4] != "<none>" {
		t.Errorf("cells %v %v", cells, err)
	}
}
