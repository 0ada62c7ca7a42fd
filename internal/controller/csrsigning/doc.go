// Package csrsigning is the CSR signing controller: it issues approved
// requests of the kubernetes.io kubelet and client signers
// (kube-apiserver-client-kubelet, kube-apiserver-client, kubelet-serving)
// with the cluster CA (--cluster-signing-cert-file/-key-file; inside
// `skiff server` the server's own CA). Certificates live for
// --cluster-signing-duration (one year by default), or
// spec.expirationSeconds (at least 10 minutes) when shorter, never beyond
// the CA; they are backdated 5 minutes for clock skew, less for short
// lifetimes. A request that
// breaks its signer's rules gets a Failed condition. Requests for other
// signers are never touched.
package csrsigning
