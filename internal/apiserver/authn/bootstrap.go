package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-sh/skiff/internal/pki"
)

// ErrUnauthenticated means the credentials do not identify anyone.
var ErrUnauthenticated = errors.New("invalid bearer token")

// SecretGetter reads one Secret; a missing Secret is an apierrors NotFound
// (or any error IsNotFound recognises).
type SecretGetter func(ctx context.Context, namespace, name string) (*corev1.Secret, error)

// BootstrapAuthenticator authenticates bootstrap tokens as upstream's
// bootstrap token authenticator does.
type BootstrapAuthenticator struct {
	Get SecretGetter
	Now func() time.Time
	// IsNotFound recognises the getter's not-found error (default:
	// apierrors.IsNotFound).
	IsNotFound func(error) bool
}

// Authenticate checks "<id>.<secret>" against Secret
// kube-system/bootstrap-token-<id>. It returns ErrUnauthenticated (with the
// reason) for tokens that are malformed, unknown, expired, deleted or not
// for authentication; other errors are the getter's.
func (a *BootstrapAuthenticator) Authenticate(ctx context.Context, token string) (*User, error) {
	tok, err := pki.ParseBootstrapToken(token)
	if err != nil {
		return nil, fmt.Errorf("%w: not a bootstrap token", ErrUnauthenticated)
	}
	s, err := a.Get(ctx, "kube-system", tok.SecretName())
	if err != nil {
		notFound := apierrors.IsNotFound
		if a.IsNotFound != nil {
			notFound = a.IsNotFound
		}
		if notFound(err) {
			return nil, fmt.Errorf("%w: no secret %s", ErrUnauthenticated, tok.SecretName())
		}
		return nil, err
	}
	if s.DeletionTimestamp != nil {
		return nil, fmt.Errorf("%w: secret %s is being deleted", ErrUnauthenticated, s.Name)
	}
	if string(s.Type) != pki.BootstrapTokenSecretType {
		return nil, fmt.Errorf("%w: secret %s has type %q", ErrUnauthenticated, s.Name, s.Type)
	}
	if string(s.Data[pki.BootstrapTokenIDKey]) != tok.ID ||
		subtle.ConstantTimeCompare(s.Data[pki.BootstrapTokenSecretKey], []byte(tok.Secret)) != 1 {
		return nil, fmt.Errorf("%w: token does not match secret %s", ErrUnauthenticated, s.Name)
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	if exp := string(s.Data[pki.BootstrapTokenExpirationKey]); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || !now().Before(t) {
			return nil, fmt.Errorf("%w: token %s expired", ErrUnauthenticated, tok.ID)
		}
	}
	if string(s.Data[pki.BootstrapTokenUsageAuthentication]) != "true" {
		return nil, fmt.Errorf("%w: token %s is not for authentication", ErrUnauthenticated, tok.ID)
	}
	groups := []string{pki.BootstrapDefaultGroup}
	for _, g := range strings.Split(string(s.Data[pki.BootstrapTokenExtraGroupsKey]), ",") {
		g = strings.TrimSpace(g)
		// Upstream only honours extra groups under system:bootstrappers:.
		if g == "" || !strings.HasPrefix(g, pki.BootstrapDefaultGroup+":") || g == pki.BootstrapDefaultGroup {
			continue
		}
		groups = append(groups, g)
	}
	groups = append(groups, AllAuthenticated)
	return &User{Name: pki.BootstrapUserPrefix + tok.ID, Groups: groups}, nil
}

// BootstrapSecret builds the Secret that stores tok, valid until expires
// (zero: no expiry), for authentication and signing, carrying the extra
// groups.
func BootstrapSecret(tok pki.BootstrapToken, description string, expires time.Time, extraGroups ...string) *corev1.Secret {
	s := &corev1.Secret{
		Type: corev1.SecretType(pki.BootstrapTokenSecretType),
		Data: map[string][]byte{
			"description":                         []byte(description),
			pki.BootstrapTokenIDKey:               []byte(tok.ID),
			pki.BootstrapTokenSecretKey:           []byte(tok.Secret),
			pki.BootstrapTokenUsageAuthentication: []byte("true"),
			pki.BootstrapTokenUsageSigning:        []byte("true"),
		},
	}
	s.Name, s.Namespace = tok.SecretName(), "kube-system"
	if !expires.IsZero() {
		s.Data[pki.BootstrapTokenExpirationKey] = []byte(expires.UTC().Format(time.RFC3339))
	}
	if len(extraGroups) > 0 {
		s.Data[pki.BootstrapTokenExtraGroupsKey] = []byte(strings.Join(extraGroups, ","))
	}
	return s
}
