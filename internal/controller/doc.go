// Package controller holds what every controller of the controller manager
// shares: the Context a controller is built from, expectations (so a
// lagging informer cache never causes duplicate creates or deletes), and
// helpers to create and delete the pods a workload controller owns.
//
// Every controller lives in its own package below this one and has the same
// shape (informer handlers only compute a key and enqueue it; one
// idempotent sync(key) reads from listers and writes through the API).
// Controllers are API clients only: nothing here touches storage.
package controller
