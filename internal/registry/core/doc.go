// Package core describes the core/v1 resources: their names, strategies
// (defaulting, validation, status handling), field selectors, graceful
// deletion of pods and the Service IP and port allocator. It performs no
// I/O; the API server calls it.
package core
