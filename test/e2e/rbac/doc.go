// Package rbac_test drives rbac.authorization.k8s.io/v1, the default
// roles, `kubectl auth can-i`/`whoami` and the PVC/PV protection
// finalizers against a real `skiff server` (no agent) with kubectl 1.32.
package rbac_test
