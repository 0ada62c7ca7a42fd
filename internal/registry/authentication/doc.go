// Package authentication serves authentication.k8s.io/v1
// SelfSubjectReview (`kubectl auth whoami`): create-only, never stored,
// answering with the authenticated user of the request.
package authentication
