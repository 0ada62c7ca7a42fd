package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
	"k8s.io/client-go/kubernetes"
)

// Defaults of Config.
const (
	DefaultClusterDomain = "cluster.local"
	DefaultTTL           = 5 * time.Second
	DefaultResolvConf    = "/etc/resolv.conf"
	// DefaultForwardTimeout bounds one exchange with one upstream.
	DefaultForwardTimeout = 2 * time.Second
)

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	// Client reads Services and EndpointSlices (required).
	Client kubernetes.Interface
	// ListenAddr is the UDP and TCP address served, e.g. "10.43.0.10:53".
	ListenAddr string
	// ClusterDomain is the zone answered from the cluster, e.g. "cluster.local".
	ClusterDomain string
	// Upstreams are host:port resolvers for names outside the zone; empty means
	// the nameservers of ResolvConf.
	Upstreams []string
	// ResolvConf is read when Upstreams is empty.
	ResolvConf string
	// TTL of every answer from the cluster.
	TTL time.Duration
	// ForwardTimeout bounds one exchange with one upstream.
	ForwardTimeout time.Duration
	Logger         *slog.Logger
}

// setDefaults fills zero values; it reads ResolvConf when Upstreams is empty.
func (c *Config) setDefaults() error {
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	c.ClusterDomain = strings.ToLower(strings.Trim(c.ClusterDomain, "."))
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = DefaultForwardTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.Upstreams) == 0 {
		if c.ResolvConf == "" {
			c.ResolvConf = DefaultResolvConf
		}
		rc, err := dns.ClientConfigFromFile(c.ResolvConf)
		if err != nil {
			return fmt.Errorf("upstreams from %s: %w", c.ResolvConf, err)
		}
		for _, s := range rc.Servers {
			c.Upstreams = append(c.Upstreams, net.JoinHostPort(s, rc.Port))
		}
	}
	for i, u := range c.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			c.Upstreams[i] = net.JoinHostPort(u, "53")
		}
	}
	return nil
}

// Validate rejects a config that cannot serve, naming the flag at fault.
func (c *Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("a client is required (--kubeconfig)"))
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.ListenAddr, err))
	}
	if _, ok := dns.IsDomainName(c.ClusterDomain); !ok || c.ClusterDomain == "" {
		errs = append(errs, fmt.Errorf("--cluster-domain %q is not a domain name", c.ClusterDomain))
	}
	if c.TTL < time.Second || c.TTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("--ttl %s: must be between 1s and 24h", c.TTL))
	}
	if c.ForwardTimeout <= 0 {
		errs = append(errs, fmt.Errorf("forward timeout %s: must be positive", c.ForwardTimeout))
	}
	for _, u := range c.Upstreams {
		host, _, err := net.SplitHostPort(u)
		if err != nil || net.ParseIP(host) == nil {
			errs = append(errs, fmt.Errorf("--upstream %q: want IP:port", u))
		}
	}
	if len(c.Upstreams) == 0 {
		errs = append(errs, errors.New("no upstream resolvers (--upstream, or nameservers in resolv.conf)"))
	}
	return errors.Join(errs...)
}
