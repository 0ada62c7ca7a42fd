package kubelet

import (
	"context"
	"net"
	"strconv"

	"github.com/skiff-sh/skiff/internal/kubelet/server"
)

// startServer starts the kubelet API (logs, exec) unless no client CA is
// configured, and records its port for node.status.daemonEndpoints. The
// returned func waits for it to stop after ctx ends.
func (k *Kubelet) startServer(ctx context.Context) (wait func(), err error) {
	k.port = kubeletPort
	if k.cfg.ClientCAs == nil {
		return func() {}, nil
	}
	port := k.cfg.Port
	if port == 0 {
		port = server.DefaultPort
	}
	srv, err := server.New(server.Config{
		Addr: net.JoinHostPort(k.cfg.ServerAddress, strconv.Itoa(port)), ClientCAs: k.cfg.ClientCAs,
		Runtime: k.rt, Stats: newStatsProvider(k), Hosts: []string{k.nodeIP, k.cfg.NodeName}, Logger: k.cfg.Logger,
		GetCertificate: k.cfg.ServingCertificate,
	})
	if err != nil {
		return nil, err
	}
	k.port = int32(srv.Port())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			k.log.Error("kubelet API stopped", "err", err)
		}
	}()
	return func() { <-done }, nil
}
