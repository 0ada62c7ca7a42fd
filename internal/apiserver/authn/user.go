package authn

import (
	"context"
	"crypto/x509"
	"slices"
)

// Well-known groups.
const (
	AllAuthenticated = "system:authenticated"
	SystemMasters    = "system:masters"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// InGroup reports whether u is a member of group.
func (u *User) InGroup(group string) bool { return u != nil && slices.Contains(u.Groups, group) }

type userKey struct{}

// WithUser returns ctx carrying u.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the user ctx carries, if any.
func UserFrom(ctx context.Context) (*User, bool) {
	u, ok := ctx.Value(userKey{}).(*User)
	return u, ok && u != nil
}

// FromCertificate is the user of a verified client certificate, as
// kube-apiserver's x509 authenticator: CN is the name, O are the groups.
func FromCertificate(cert *x509.Certificate) *User {
	groups := append([]string(nil), cert.Subject.Organization...)
	groups = append(groups, AllAuthenticated)
	return &User{Name: cert.Subject.CommonName, Groups: groups}
}
