// Package walkthrough is the user's first session with skiff as an
// end-to-end test: an nginx pod applied with kubectl, reached from the host,
// its logs, exec, port-forward (WebSocket and SPDY kubectl versions),
// attach, and a delete that leaves nothing behind on the node. It needs
// root, a real containerd and the Debian packages the nginx image is built
// from.
package walkthrough
