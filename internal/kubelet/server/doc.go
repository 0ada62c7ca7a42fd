// Package server is the kubelet's HTTPS API on port 10250: container logs
// (read from the CRI log files), exec, attach and port-forward (through the
// runtime's CRI streaming server; WebSocket clients are translated to the
// SPDY the runtime speaks), the stats Summary (/stats/summary, types in
// statsapi) and resource metrics (/metrics/resource) of a StatsProvider,
// and /healthz. It serves only clients whose certificate the cluster CA
// signed. Its own certificate comes from Config.GetCertificate (the
// agent's, from the cluster CA), self-signed until there is one; it never
// talks to the API server.
package server
