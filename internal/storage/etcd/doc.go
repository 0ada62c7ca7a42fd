// Package etcd implements storage.Interface on etcd v3 through the real
// etcd client, and starts an embedded etcd server. Every write is a
// transaction guarded by the key's revision; resourceVersion is the etcd
// revision. Only the API server may use this package.
package etcd
