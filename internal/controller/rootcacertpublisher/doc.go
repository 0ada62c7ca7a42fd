// Package rootcacertpublisher is upstream's root-ca-cert-publisher
// controller: every namespace gets a kube-root-ca.crt ConfigMap holding
// the cluster CA under ca.crt (what pods' kube-api-access volumes mount),
// re-created when deleted and put back when changed. It owns only that
// ConfigMap; without a CA it does nothing.
package rootcacertpublisher
