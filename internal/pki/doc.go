// Package pki creates and persists the cluster's certificate authority, the
// API server's serving certificate and client certificates, and writes
// kubeconfig files that use them. It owns files under a TLS directory; it
// does not serve anything.
package pki
