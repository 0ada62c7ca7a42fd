// Package rbac describes rbac.authorization.k8s.io/v1 roles, rolebindings,
// clusterroles and clusterrolebindings: upstream's defaults (subject and
// roleRef apiGroups), validation (rules, subjects, immutable roleRef,
// aggregation selectors) and kube-apiserver's table columns. No I/O and no
// authorization: nothing here decides whether a request is allowed.
package rbac
