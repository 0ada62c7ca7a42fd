// Package clusterroleaggregation is upstream's clusterrole-aggregation
// controller: a ClusterRole with an aggregationRule gets as rules the
// union of the rules of every other ClusterRole its selectors match
// (admin, edit and view are built this way). It writes only the rules of
// aggregated roles, through the API; it authorizes nothing.
package clusterroleaggregation
