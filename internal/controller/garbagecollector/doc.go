// Package garbagecollector deletes objects whose owners are gone, as
// upstream's garbage collector does. It watches the metadata of every
// listable, deletable resource, keeps an ownership graph (owner UID →
// dependents), and acts on three events:
//
//   - an owner disappeared: its dependents whose owners are all gone are
//     deleted (Background, or Foreground/Orphan as their own finalizers say);
//     dependents with a remaining owner only lose the dangling reference;
//   - an owner carries the orphan finalizer: its dependents lose their
//     reference to it, then the finalizer is removed;
//   - an owner carries the foregroundDeletion finalizer: its dependents are
//     deleted first (blocking ones in the foreground too), then the
//     finalizer is removed so the API server can delete the owner.
//
// Only the graph builder goroutine mutates the graph; workers read it under
// a lock and act through the API.
package garbagecollector
