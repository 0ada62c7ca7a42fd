package serviceaccount

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"
)

// Prefix of every service account's user name.
const (
	UserPrefix  = "system:serviceaccount:"
	GroupAll    = "system:serviceaccounts"
	GroupPrefix = "system:serviceaccounts:"
)

// Errors of Verify; the API server answers all of them with 401.
var (
	ErrMalformed = errors.New("malformed service account token")
	ErrSignature = errors.New("service account token signature is invalid")
	ErrIssuer    = errors.New("service account token has a foreign issuer")
	ErrAudience  = errors.New("service account token audiences do not match")
	ErrExpired   = errors.New("service account token has expired")
	ErrNotYet    = errors.New("service account token is not valid yet")
)

// Ref names an object a token is about or bound to.
type Ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// Private is upstream's "kubernetes.io" claim.
type Private struct {
	Namespace      string `json:"namespace"`
	ServiceAccount Ref    `json:"serviceaccount"`
	Pod            *Ref   `json:"pod,omitempty"`
	Secret         *Ref   `json:"secret,omitempty"`
	Node           *Ref   `json:"node,omitempty"`
	// WarnAfter (unix seconds) is set on an extended token: the time it
	// would have expired without the extension.
	WarnAfter *int64 `json:"warnafter,omitempty"`
}

// Claims of a bound service account token.
type Claims struct {
	Issuer     string    `json:"iss"`
	Subject    string    `json:"sub"`
	Audience   Audiences `json:"aud"`
	Expiry     int64     `json:"exp"`
	IssuedAt   int64     `json:"iat"`
	NotBefore  int64     `json:"nbf"`
	ID         string    `json:"jti"`
	Kubernetes Private   `json:"kubernetes.io"`
}

// UserName is system:serviceaccount:<ns>:<name>.
func UserName(namespace, name string) string { return UserPrefix + namespace + ":" + name }

// Groups are the groups of a service account in namespace (without
// system:authenticated, which every authenticated user gets).
func Groups(namespace string) []string { return []string{GroupAll, GroupPrefix + namespace} }

// Request is what a token is issued for.
type Request struct {
	Namespace      string
	ServiceAccount Ref
	Audiences      []string
	Lifetime       time.Duration
	Pod, Secret    *Ref
	Node           *Ref
}

// Audiences is the aud claim: a list, or one string as JWTs may carry it.
type Audiences []string

// UnmarshalJSON accepts a string or a list of strings.
func (a *Audiences) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audiences{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// Issuer signs and verifies tokens with one key.
type Issuer struct {
	// Name is the iss claim (--service-account-issuer).
	Name string
	// Audiences the API server accepts (--api-audiences); empty: Name.
	Audiences []string
	Key       *Key
	// ExtendExpiration issues pod-bound tokens asked for with
	// WarnOnlyLifetime and the API's audiences (the ServiceAccount
	// admission's kube-api-access volume) for ExtendedLifetime instead,
	// with a warnafter claim at the lifetime asked for, so that pods of
	// clients that do not reload their token keep working.
	ExtendExpiration bool
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

func (i *Issuer) now() time.Time {
	if i.Now != nil {
		return i.Now()
	}
	return time.Now()
}

// APIAudiences are the audiences the API server accepts.
func (i *Issuer) APIAudiences() []string {
	if len(i.Audiences) == 0 {
		return []string{i.Name}
	}
	return i.Audiences
}

// Lifetimes of the ServiceAccount admission's tokens: they ask for
// WarnOnlyLifetime (an hour and a tell-tale 7 s) and, with
// ExtendExpiration, get ExtendedLifetime.
const (
	WarnOnlyLifetime = 3607 * time.Second
	ExtendedLifetime = 365 * 24 * time.Hour
)

// Issue signs a token for req and returns it with its claims.
func (i *Issuer) Issue(req Request) (string, *Claims, error) {
	now := i.now()
	aud := req.Audiences
	if len(aud) == 0 {
		aud = i.APIAudiences()
	}
	c := &Claims{
		Issuer: i.Name, Subject: UserName(req.Namespace, req.ServiceAccount.Name), Audience: slices.Clone(aud),
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(req.Lifetime).Unix(), ID: string(uuid.NewUUID()),
		Kubernetes: Private{Namespace: req.Namespace, ServiceAccount: req.ServiceAccount, Pod: req.Pod, Secret: req.Secret, Node: req.Node},
	}
	if i.ExtendExpiration && req.Pod != nil && req.Lifetime == WarnOnlyLifetime && slices.ContainsFunc(aud, func(a string) bool {
		return slices.Contains(i.APIAudiences(), a)
	}) {
		warn := c.Expiry
		c.Kubernetes.WarnAfter = &warn
		c.Expiry = now.Add(ExtendedLifetime).Unix()
	}
	tok, err := i.sign(c)
	return tok, c, err
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

func (i *Issuer) sign(c *Claims) (string, error) {
	h, err := json.Marshal(header{Alg: "ES256", Kid: i.Key.KeyID})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	input := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, i.Key.Private, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// LooksLikeJWT reports whether tok has the shape of a JWT (three dotted
// parts, a JSON header), so that other bearer tokens go elsewhere.
func LooksLikeJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	return err == nil && len(h) > 0 && h[0] == '{'
}

// leeway is the clock skew allowed on nbf and iat, as upstream's
// validator.
const leeway = 60 * time.Second

// Verify checks the signature, issuer, audience and validity window of
// tok and returns its claims. Whether the service account and bound
// objects still exist is the caller's check.
func (i *Issuer) Verify(tok string) (*Claims, error) {
	return i.VerifyFor(tok, i.APIAudiences())
}

// VerifyFor is Verify for a token that must name one of audiences (a
// TokenReview's spec.audiences).
func (i *Issuer) VerifyFor(tok string, audiences []string) (*Claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, ErrMalformed
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, ErrMalformed
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, ErrMalformed
	}
	if h.Alg != "ES256" {
		return nil, ErrSignature
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, ErrSignature
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&i.Key.Private.PublicKey, sum[:], r, s) {
		return nil, ErrSignature
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, ErrMalformed
	}
	c := &Claims{}
	if err := json.Unmarshal(pb, c); err != nil {
		return nil, ErrMalformed
	}
	if c.Issuer != i.Name {
		return nil, ErrIssuer
	}
	ok := false
	for _, a := range c.Audience {
		if slices.Contains(audiences, a) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, ErrAudience
	}
	now := i.now()
	if c.Expiry == 0 || !now.Before(time.Unix(c.Expiry, 0)) {
		return nil, ErrExpired
	}
	if c.NotBefore != 0 && now.Add(leeway).Before(time.Unix(c.NotBefore, 0)) {
		return nil, ErrNotYet
	}
	if !strings.HasPrefix(c.Subject, UserPrefix) || c.Kubernetes.Namespace == "" || c.Kubernetes.ServiceAccount.Name == "" ||
		c.Subject != UserName(c.Kubernetes.Namespace, c.Kubernetes.ServiceAccount.Name) {
		return nil, ErrMalformed
	}
	return c, nil
}
