// Package join tests joining a node with the server's node token: the
// bootstrap token's identity and limits, CSR approval and signing, the
// agent's node kubeconfig and its re-use, `kubectl certificate`, and
// (certs_test.go) the kubelet's serving certificate from the cluster CA, the
// API server verifying kubelets, and client and serving certificate
// rotation with a short --cluster-signing-duration. It needs root (a real containerd runs the pods).
package join
