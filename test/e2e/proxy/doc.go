// Package proxy tests the Service proxy end to end: a real server, a real
// agent (containerd, kubelet, proxy with its own nftables table) and busybox
// httpd pods reached through ClusterIPs and NodePorts from the host and from
// pods. It needs root.
package proxy
