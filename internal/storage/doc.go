// Package storage defines the revisioned object store every API resource is
// kept in: get, list, create, guaranteed update with optimistic concurrency,
// delete with preconditions and watch from a revision.
//
// It owns the contract (Interface, the selection predicate, the sentinel
// errors) and nothing else. Implementations live in sub-packages (etcd/ is
// the real one); storagetest/ is the conformance suite every implementation
// must pass. Nothing here knows about HTTP, Kubernetes API errors or a
// particular resource: the API server translates storage errors to Status
// bodies.
package storage
