// Package storagetest is the conformance suite every storage.Interface
// implementation runs (the etcd store, the watch cache): one set of
// behaviours, checked the same way everywhere.
package storagetest
