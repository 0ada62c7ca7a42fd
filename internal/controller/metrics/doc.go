// Package metrics holds the controller manager's Prometheus metrics: per
// controller, how many syncs ran, how many failed and how long they took.
// It owns its registry (no package globals, nothing registered with the
// default Prometheus registry) and serves it over HTTP; it must not know
// about any particular controller. A nil *Metrics records nothing, so
// controllers built without one (unit tests) need no special case.
package metrics
