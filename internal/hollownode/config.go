package hollownode

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
)

// Defaults for the zero fields of Config.
const (
	DefaultNamePrefix = "hollow-node-"
	DefaultCPU        = "4"
	DefaultMemory     = "16Gi"
	DefaultPods       = "110"
)

// Config configures a set of hollow nodes.
type Config struct {
	Client kubernetes.Interface
	// Count is how many nodes to simulate: <NamePrefix>0 … <NamePrefix><Count-1>.
	Count      int
	NamePrefix string
	// CPU, Memory and Pods are each node's capacity (and allocatable).
	CPU, Memory, Pods string
	// Labels are added to the well-known node labels.
	Labels map[string]string
	// LeaseRenewInterval is how often each node renews its Lease (default
	// 10 s, as the kubelet); tests with a short node-monitor grace period
	// shorten it.
	LeaseRenewInterval time.Duration
	Logger             *slog.Logger
}

// Validate rejects an unusable config; it does not fill defaults.
func (c *Config) Validate() error {
	if c.Client == nil {
		return errors.New("hollownode: no client")
	}
	if c.LeaseRenewInterval < 0 {
		return fmt.Errorf("hollownode: lease renew interval %s: must not be negative", c.LeaseRenewInterval)
	}
	if c.Count < 1 {
		return fmt.Errorf("hollownode: count %d: must be at least 1", c.Count)
	}
	for _, q := range []struct{ name, v string }{{"cpu", c.CPU}, {"memory", c.Memory}, {"pods", c.Pods}} {
		if q.v == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.v)
		if err != nil {
			return fmt.Errorf("hollownode: %s %q: %w", q.name, q.v, err)
		}
		if v.Sign() <= 0 {
			return fmt.Errorf("hollownode: %s %q: must be positive", q.name, q.v)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.NamePrefix == "" {
		c.NamePrefix = DefaultNamePrefix
	}
	if c.CPU == "" {
		c.CPU = DefaultCPU
	}
	if c.Memory == "" {
		c.Memory = DefaultMemory
	}
	if c.Pods == "" {
		c.Pods = DefaultPods
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// timing holds the simulated kubelet's periods; tests shorten them.
type timing struct {
	leaseRenew   time.Duration // Lease renewTime refresh (kubelet: 10 s)
	statusReport time.Duration // unconditional node status post (kubelet: nodeStatusReportFrequency)
	stopGrace    time.Duration // longest a simulated container takes to stop
	crashBackoff time.Duration // wait between a container's exit and its restart
}

var defaultTiming = timing{
	leaseRenew:   10 * time.Second,
	statusReport: 60 * time.Second,
	stopGrace:    2 * time.Second,
	crashBackoff: 10 * time.Second,
}

// leaseDurationSeconds is the kubelet's default node lease duration.
const leaseDurationSeconds = 40
