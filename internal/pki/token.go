package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Bootstrap token Secrets, as kubeadm and the bootstrap authenticator
// define them (k8s.io/cluster-bootstrap/token/api).
const (
	BootstrapTokenSecretPrefix        = "bootstrap-token-"
	BootstrapTokenSecretType          = "bootstrap.kubernetes.io/token"
	BootstrapTokenIDKey               = "token-id"
	BootstrapTokenSecretKey           = "token-secret"
	BootstrapTokenExpirationKey       = "expiration"
	BootstrapTokenUsageAuthentication = "usage-bootstrap-authentication"
	BootstrapTokenUsageSigning        = "usage-bootstrap-signing"
	BootstrapTokenExtraGroupsKey      = "auth-extra-groups"
	BootstrapUserPrefix               = "system:bootstrap:"
	BootstrapDefaultGroup             = "system:bootstrappers"
	// BootstrapAgentGroup is the extra group skiff's node token carries.
	BootstrapAgentGroup = "system:bootstrappers:skiff:agent"
)

// nodeTokenPrefix marks K3s's secure token format: K10<ca hash>::<credentials>.
const nodeTokenPrefix = "K10"

var (
	tokenRE   = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)
	caHashRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	tokenRune = []byte("abcdefghijklmnopqrstuvwxyz0123456789")
)

// ErrInvalidToken is returned for a string that is not a bootstrap or node token.
var ErrInvalidToken = errors.New("invalid token")

// BootstrapToken is a bootstrap token's id and secret.
type BootstrapToken struct {
	ID     string // 6 characters [a-z0-9]
	Secret string // 16 characters [a-z0-9]
}

// String is the bearer form "<id>.<secret>".
func (t BootstrapToken) String() string { return t.ID + "." + t.Secret }

// SecretName is the kube-system Secret that stores the token.
func (t BootstrapToken) SecretName() string { return BootstrapTokenSecretPrefix + t.ID }

// NewBootstrapToken draws a random token.
func NewBootstrapToken() (BootstrapToken, error) {
	id, err := randomString(6)
	if err != nil {
		return BootstrapToken{}, err
	}
	secret, err := randomString(16)
	if err != nil {
		return BootstrapToken{}, err
	}
	return BootstrapToken{ID: id, Secret: secret}, nil
}

func randomString(n int) (string, error) {
	out := make([]byte, n)
	// Rejection sampling keeps every character equally likely.
	limit := byte(256 - 256%len(tokenRune))
	buf := make([]byte, 1)
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("random token: %w", err)
		}
		if buf[0] >= limit {
			continue
		}
		out[i] = tokenRune[int(buf[0])%len(tokenRune)]
		i++
	}
	return string(out), nil
}

// ParseBootstrapToken parses "<id>.<secret>".
func ParseBootstrapToken(s string) (BootstrapToken, error) {
	m := tokenRE.FindStringSubmatch(s)
	if m == nil {
		return BootstrapToken{}, fmt.Errorf("%w: a bootstrap token is <6 chars [a-z0-9]>.<16 chars [a-z0-9]>", ErrInvalidToken)
	}
	return BootstrapToken{ID: m[1], Secret: m[2]}, nil
}

// CAHash is the hex SHA-256 of a CA bundle as served at /cacerts.
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}

// NodeToken is what `skiff agent --token` takes: K3s's secure format
// K10<sha256 of the CA bundle>::<id>.<secret>, or a bare <id>.<secret>
// (then the CA is not pinned).
type NodeToken struct {
	CAHash string // empty for a bare token
	Token  BootstrapToken
}

// String formats the token in the secure format when CAHash is set.
func (t NodeToken) String() string {
	if t.CAHash == "" {
		return t.Token.String()
	}
	return nodeTokenPrefix + t.CAHash + "::" + t.Token.String()
}

// FormatNodeToken builds the secure node token for a CA bundle.
func FormatNodeToken(caPEM []byte, tok BootstrapToken) string {
	return NodeToken{CAHash: CAHash(caPEM), Token: tok}.String()
}

// ParseNodeToken accepts the secure format or a bare bootstrap token.
func ParseNodeToken(s string) (NodeToken, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, nodeTokenPrefix) {
		tok, err := ParseBootstrapToken(s)
		return NodeToken{Token: tok}, err
	}
	hash, creds, ok := strings.Cut(strings.TrimPrefix(s, nodeTokenPrefix), "::")
	if !ok || !caHashRE.MatchString(hash) {
		return NodeToken{}, fmt.Errorf("%w: expected K10<64 hex digits>::<id>.<secret>", ErrInvalidToken)
	}
	tok, err := ParseBootstrapToken(creds)
	if err != nil {
		return NodeToken{}, err
	}
	return NodeToken{CAHash: hash, Token: tok}, nil
}

// WriteSecretFile writes data to path with mode 0600, atomically.
func WriteSecretFile(path string, data []byte) error { return writeFile(path, data, 0o600) }
