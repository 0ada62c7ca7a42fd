// Package defaults fills unset fields with upstream Kubernetes' defaults
// (k8s.io/kubernetes pkg/apis/*/v1 defaulting) for the external v1 types.
// Functions mutate in place and never fail; they must not validate.
package defaults
