// Package csrcleaner is upstream's CSR cleaner: once an hour it deletes
// certificate signing requests nobody needs any more, so that automatic
// kubelet requests and approvals do not pile up. A request goes when it
// was issued and approved over an hour ago, denied or failed over an hour
// ago, left pending for over a day, or when its issued certificate has
// expired.
package csrcleaner
