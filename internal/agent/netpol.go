package agent

import (
	"context"
	"fmt"

	"github.com/skiff-sh/skiff/internal/netpol"
)

// newNetpol builds the node's NetworkPolicy enforcer, or nil when it is
// disabled.
func newNetpol(cfg Config) (*netpol.Enforcer, error) {
	if cfg.DisableNetworkPolicy {
		return nil, nil
	}
	return netpol.New(netpol.Config{Client: cfg.Client, NodeName: cfg.NodeName, Table: cfg.NetpolTable, Logger: cfg.Logger})
}

// runNetpol makes bridged traffic visible to the forward hook and runs the
// enforcer until ctx ends. It runs beside the kubelet: pods may start
// before the first sync, as upstream's network plugins allow.
func runNetpol(ctx context.Context, e *netpol.Enforcer) error {
	if e == nil {
		<-ctx.Done()
		return nil
	}
	if err := bridgeNetfilter(); err != nil {
		return fmt.Errorf("%w (--disable-network-policy runs the node without enforcement)", err)
	}
	if err := e.Run(ctx); err != nil {
		return fmt.Errorf("network policy: %w", err)
	}
	return nil
}
