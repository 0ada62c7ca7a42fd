// Package join tests joining a node with the server's node token: the
// bootstrap token's identity and limits, CSR approval and signing, the
// agent's node kubeconfig and its re-use, and `kubectl certificate`. It
// needs root (a real containerd runs the pods).
package join
