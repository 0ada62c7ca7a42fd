// Package satoken holds the end-to-end tests of service account
// credentials: a real server and agent, a busybox pod that gets the
// kube-api-access files, its token used against the API from the test and
// from inside the pod through the kubernetes Service, TokenRequest through
// kubectl, ServiceAccount admission and kube-root-ca.crt publishing.
package satoken
