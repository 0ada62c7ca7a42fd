package authn

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/pki"
)

func TestBootstrapAuthenticator(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := pki.BootstrapToken{ID: "abcdef", Secret: "0123456789abcdef"}
	valid := func() *corev1.Secret {
		return BootstrapSecret(tok, "test", now.Add(time.Hour), pki.BootstrapAgentGroup)
	}
	for _, tc := range []struct {
		name   string
		token  string
		secret func() *corev1.Secret
		ok     bool
		getErr error
	}{
		{name: "valid", token: tok.String(), secret: valid, ok: true},
		{name: "no expiry", token: tok.String(), secret: func() *corev1.Secret { return BootstrapSecret(tok, "", time.Time{}) }, ok: true},
		{name: "wrong secret", token: "abcdef.0000000000000000", secret: valid},
		{name: "malformed", token: "abcdef", secret: valid},
		{name: "unknown id", token: tok.String(), getErr: apierrors.NewNotFound(corev1.Resource("secrets"), "x")},
		{name: "expired", token: tok.String(), secret: func() *corev1.Secret { return BootstrapSecret(tok, "", now.Add(-time.Second)) }},
		{name: "wrong type", token: tok.String(), secret: func() *corev1.Secret { s := valid(); s.Type = corev1.SecretTypeOpaque; return s }},
		{name: "not for authentication", token: tok.String(), secret: func() *corev1.Secret {
			s := valid()
			delete(s.Data, pki.BootstrapTokenUsageAuthentication)
			return s
		}},
		{name: "being deleted", token: tok.String(), secret: func() *corev1.Secret {
			s := valid()
			s.DeletionTimestamp = &metav1.Time{Time: now}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := BootstrapAuthenticator{Now: func() time.Time { return now }, Get: func(_ context.Context, ns, name string) (*corev1.Secret, error) {
				if ns != "kube-system" || name != "bootstrap-token-abcdef" {
					t.Errorf("get %s/%s", ns, name)
				}
				if tc.getErr != nil {
					return nil, tc.getErr
				}
				return tc.secret(), nil
			}}
			u, err := a.Authenticate(context.Background(), tc.token)
			if !tc.ok {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("err %v, want ErrUnauthenticated", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Name != "system:bootstrap:abcdef" || !u.InGroup("system:bootstrappers") || !u.InGroup(AllAuthenticated) {
				t.Errorf("user %+v", u)
			}
			if tc.name == "valid" && !u.InGroup(pki.BootstrapAgentGroup) {
				t.Errorf("extra group missing: %v", u.Groups)
			}
		})
	}
}

func TestExtraGroupsOutsideBootstrappersIgnored(t *testing.T) {
	tok := pki.BootstrapToken{ID: "abcdef", Secret: "0123456789abcdef"}
	s := BootstrapSecret(tok, "", time.Time{}, "system:masters", "system:bootstrappers:ok")
	a := BootstrapAuthenticator{Get: func(context.Context, string, string) (*corev1.Secret, error) { return s, nil }}
	u, err := a.Authenticate(context.Background(), tok.String())
	if err != nil {
		t.Fatal(err)
	}
	if u.InGroup("system:masters") || !u.InGroup("system:bootstrappers:ok") {
		t.Errorf("groups %v", u.Groups)
	}
}

func TestUserContextAndCertificate(t *testing.T) {
	u := FromCertificate(&x509.Certificate{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}})
	if u.Name != "system:node:n1" || !slices.Equal(u.Groups, []string{"system:nodes", AllAuthenticated}) {
		t.Errorf("cert user %+v", u)
	}
	if _, ok := UserFrom(context.Background()); ok {
		t.Error("user in an empty context")
	}
	if got, ok := UserFrom(WithUser(context.Background(), u)); !ok || got != u {
		t.Error("user not carried")
	}
}
