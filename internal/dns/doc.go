// Package dns is the cluster DNS server: it answers the Kubernetes DNS
// specification (schema 1.1.0) for the cluster zone from Services and
// EndpointSlices, answers `<a-b-c-d>.<ns>.pod.<zone>` by parsing the name (as
// upstream's "pods insecure" mode), and forwards every other name to the
// node's upstream resolvers.
//
// Queries never list objects: informer events rebuild, for the one Service
// they touch, the records it contributes to an in-memory table of name →
// records by type (see table.go), and a query is one map lookup.
//
// It owns no Kubernetes objects and writes nothing to the API; the kube-dns
// Service and the pods' resolv.conf belong to the server and the kubelet.
package dns
