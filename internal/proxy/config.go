package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"k8s.io/client-go/kubernetes"
)

// DefaultTable is the nftables table (family ip) the proxy owns.
const DefaultTable = "skiff-proxy"

// Config configures one proxy.
type Config struct {
	// Client reads Services, EndpointSlices and the Node.
	Client kubernetes.Interface
	// NodeName selects the local endpoints (externalTrafficPolicy and
	// internalTrafficPolicy Local) and the Node whose addresses serve NodePorts.
	NodeName string
	// ClusterCIDR is the pod network; traffic from outside it to a ClusterIP
	// is masqueraded. Empty: the Node's spec.podCIDRs (upstream's
	// --detect-local-mode=NodeCIDR); until they are known, everything is.
	ClusterCIDR string
	// Table is the nftables table (family ip); default DefaultTable.
	Table string
	// MinSyncInterval coalesces bursts of changes into one transaction
	// (default 5 ms).
	MinSyncInterval time.Duration
	Logger          *slog.Logger
}

// Validate rejects an unusable config, naming the flag.
func (c *Config) Validate() error {
	if c.Client == nil {
		return errors.New("--kubeconfig is required")
	}
	if c.NodeName == "" {
		return errors.New("--node-name is required")
	}
	if c.ClusterCIDR != "" {
		p, err := netip.ParsePrefix(c.ClusterCIDR)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("--cluster-cidr %q: must be an IPv4 CIDR", c.ClusterCIDR)
		}
	}
	if len(c.Table) > 64 {
		return fmt.Errorf("--table %q: at most 64 characters", c.Table)
	}
	for _, r := range c.Table {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("--table %q: only letters, digits, '-' and '_'", c.Table)
		}
	}
	if c.MinSyncInterval < 0 {
		return fmt.Errorf("minimum sync interval %v: must not be negative", c.MinSyncInterval)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.MinSyncInterval == 0 {
		c.MinSyncInterval = 5 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
