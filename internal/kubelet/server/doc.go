// Package server is the kubelet's HTTPS API on port 10250: container logs
// (read from the CRI log files), exec (through the runtime's CRI streaming
// server) and /healthz. It serves only clients whose certificate the
// cluster CA signed; it never talks to the API server.
package server
