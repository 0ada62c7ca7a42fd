// Package authorization serves authorization.k8s.io/v1 reviews:
// SelfSubjectAccessReview, SelfSubjectRulesReview and SubjectAccessReview,
// create-only and never stored, with upstream's validation. skiff has no
// authorizer yet (every authenticated user may do everything), so every
// review answers allowed, and says so in its reason.
package authorization
