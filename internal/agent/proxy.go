package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/skiff-sh/skiff/internal/proxy"
)

// newProxy builds the node's Service proxy, or nil with --disable-proxy.
// Its local traffic is the Node's podCIDR (no cluster CIDR is known here).
func newProxy(cfg Config) (*proxy.Proxy, error) {
	if cfg.DisableProxy {
		return nil, nil
	}
	p, err := proxy.New(proxy.Config{Client: cfg.Client, NodeName: cfg.NodeName, Table: cfg.ProxyTable, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("--proxy-table: %w", err)
	}
	return p, nil
}

// bridgeNetfilter makes bridged pod-to-pod traffic pass the ip hooks
// (NODE.md: br_netfilter works here): the proxy needs it so a reply from a
// pod on the same bridge to a pod that reached it through a ClusterIP is
// un-DNATed by conntrack, the NetworkPolicy enforcer so pod-to-pod frames
// on one bridge cross its forward hook.
func bridgeNetfilter() error {
	const sysctl = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	if _, err := os.Stat(sysctl); errors.Is(err, os.ErrNotExist) {
		if out, err := exec.Command("modprobe", "br_netfilter").CombinedOutput(); err != nil {
			return fmt.Errorf("modprobe br_netfilter: %v: %s", err, out)
		}
	}
	if err := os.WriteFile(sysctl, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable %s: %w", sysctl, err)
	}
	return nil
}

// startProxy runs the proxy beside the kubelet; the returned function stops
// it and waits (its rules stay, as kube-proxy's). A proxy error is logged:
// the node's pods still run without Services.
func (a *Agent) startProxy(ctx context.Context) (ready <-chan struct{}, stop func()) {
	if a.proxy == nil {
		c := make(chan struct{})
		close(c)
		return c, func() {}
	}
	if err := bridgeNetfilter(); err != nil {
		a.cfg.Logger.Warn("pods on one bridge cannot reach each other through Services", "err", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.proxy.Run(ctx); err != nil {
			a.cfg.Logger.Error("proxy stopped", "err", err)
		}
	}()
	return a.proxy.Ready(), func() { cancel(); <-done }
}
