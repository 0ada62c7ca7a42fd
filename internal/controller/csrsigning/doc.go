// Package csrsigning is the CSR signing controller: it issues approved
// requests of the kubernetes.io kubelet and client signers
// (kube-apiserver-client-kubelet, kube-apiserver-client, kubelet-serving)
// with the cluster CA (--cluster-signing-cert-file/-key-file; inside
// `skiff server` the server's own CA). Certificates live for
// spec.expirationSeconds or one year, never beyond the CA. A request that
// breaks its signer's rules gets a Failed condition. Requests for other
// signers are never touched.
package csrsigning
