// Package authn holds who a request is from: the User the API server
// attaches to each request's context, the user of a verified client
// certificate, and the bootstrap token authenticator (Bearer <id>.<secret>
// checked against kube-system/bootstrap-token-<id> Secrets). It reads
// Secrets through a getter the API server hands it; it never talks to
// storage or the network itself.
package authn
