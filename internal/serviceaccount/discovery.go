package serviceaccount

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Paths of the OIDC discovery endpoints, as kube-apiserver serves them.
const (
	OpenIDConfigPath = "/.well-known/openid-configuration"
	JWKSPath         = "/openid/v1/jwks"
)

// OpenIDConfiguration is the discovery document: the issuer, where its
// keys are, and what the tokens look like.
func (i *Issuer) OpenIDConfiguration() ([]byte, error) {
	return json.Marshal(map[string]any{
		"issuer":                                i.Name,
		"jwks_uri":                              strings.TrimSuffix(i.Name, "/") + JWKSPath,
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
	})
}

// JWKS is the public key set that verifies this issuer's tokens.
func (i *Issuer) JWKS() ([]byte, error) {
	pub := i.Key.Private.PublicKey
	x, y := make([]byte, 32), make([]byte, 32)
	pub.X.FillBytes(x)
	pub.Y.FillBytes(y)
	return json.Marshal(map[string]any{"keys": []map[string]string{{
		"use": "sig", "kty": "EC", "kid": i.Key.KeyID, "crv": "P-256", "alg": "ES256",
		"x": base64.RawURLEncoding.EncodeToString(x), "y": base64.RawURLEncoding.EncodeToString(y),
	}}})
}
