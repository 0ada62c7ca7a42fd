// Package bootstrappolicy holds the default cluster roles and bindings
// every cluster has, as kube-apiserver's RBAC bootstrap creates them
// (cluster-admin, admin/edit/view with their aggregation, the system:
// roles of components), and Reconcile, which makes them exist through the
// API at server start. It reconciles as upstream: missing objects are
// created, objects annotated autoupdate "true" get missing rules, labels,
// selectors and subjects added back, and nothing is ever removed. It
// authorizes nothing.
package bootstrappolicy
