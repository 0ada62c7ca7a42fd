// Package framework starts real `skiff server` processes for end-to-end
// tests (temporary data directory, free port) and runs the real kubectl and
// client-go against them. Any test can run beside any other.
package framework
