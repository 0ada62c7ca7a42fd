// Package quota says what an object charges against a ResourceQuota:
// object counts, pod compute requests and limits (with upstream's scopes
// and init-container arithmetic), Service load balancers and node ports,
// and claim storage. It is pure (no I/O), shared by the resourcequota
// controller, which sums usage over a namespace, and by the API server's
// ResourceQuota admission, which charges each new object before it is
// stored.
package quota
