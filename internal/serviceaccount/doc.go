// Package serviceaccount issues and verifies bound service account tokens:
// JWTs signed with the server's service-account key (ES256), carrying
// upstream's claims (iss, sub, aud, exp, iat, nbf, jti and the private
// "kubernetes.io" claim naming the namespace, service account and bound
// object). It also renders the OIDC discovery document and JWKS.
//
// It does no I/O beyond loading or creating the key file: whether the
// service account and bound objects still exist is the API server's check.
package serviceaccount
