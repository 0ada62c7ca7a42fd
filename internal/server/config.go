package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/scheduler"
)

// Config is the typed form of `skiff server`'s flags.
type Config struct {
	DataDir          string
	BindAddress      string
	HTTPSPort        int
	AdvertiseAddress string // "" picks the host's first non-loopback IPv4
	ServiceCIDR      string
	ClusterCIDR      string
	// EtcdServers, when set, replaces the embedded etcd with an external
	// cluster reached with the optional TLS files.
	EtcdServers  []string
	EtcdCAFile   string
	EtcdCertFile string
	EtcdKeyFile  string
	DisableAgent bool
	// PodBridge is the Linux bridge of the in-process agent's pod network
	// (default skiff0).
	PodBridge string
	// DisableScheduler turns off the scheduler that runs in the server.
	DisableScheduler bool
	// SchedulerConfig is a KubeSchedulerConfiguration file for the
	// scheduler ("" for the defaults).
	SchedulerConfig string
	// DisableControllers turns off the controller manager that runs in
	// the server; Controllers selects controllers as upstream's
	// --controllers does ("*", "name", "-name").
	DisableControllers bool
	Controllers        []string
	// ClusterDNS is the kube-dns Service's cluster IP, the resolver of
	// ClusterFirst pods ("" is the 10th address of ServiceCIDR);
	// ClusterDomain is the cluster's DNS zone.
	ClusterDNS    string
	ClusterDomain string
	// DisableDNS turns off the in-process agent's DNS server.
	DisableDNS bool
	// NodeLabels, NodeTaints, ContainerRuntimeEndpoint and CNIConfDir go to
	// the in-process agent (agent.Config's fields of the same names).
	NodeLabels, NodeTaints   []string
	ContainerRuntimeEndpoint string
	CNIConfDir               string
	// ServiceLBPool, when set, is the CIDR ServiceLB hands LoadBalancer
	// addresses out of (default: the Ready nodes' InternalIPs).
	ServiceLBPool string
	// NodeMonitorGracePeriod: a node silent this long is marked unhealthy.
	NodeMonitorGracePeriod time.Duration
	// ClusterSigningDuration is the lifetime of certificates the CSR
	// signer issues (kubelet client and serving certificates).
	ClusterSigningDuration time.Duration
	// ServiceAccountIssuer is the iss claim of service account tokens;
	// APIAudiences are the audiences the API server accepts (empty: the
	// issuer), as upstream's --service-account-issuer and --api-audiences.
	ServiceAccountIssuer string
	APIAudiences         []string
	// ExtendTokenExpiration: the pods' admission-injected tokens (3607 s
	// for the API's audiences) are issued for a year, with a warnafter of
	// the hour asked for, as upstream's --service-account-extend-token-expiration.
	ExtendTokenExpiration bool
	// DisableAdmissionPlugins turns off built-in admission plugins by
	// upstream's names (only "ServiceAccount" can be turned off).
	DisableAdmissionPlugins []string
	// MaxMutatingRequestsInflight is how many mutating requests of network
	// clients are served at once; the rest wait in a first come, first
	// served line, 429 past it (0: no limit). Upstream's flag of the same
	// name sizes API Priority and Fairness's seats, which queue likewise.
	MaxMutatingRequestsInflight int
	Logger                      *slog.Logger
}

// DefaultConfig returns the documented flag defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:                "/var/lib/skiff",
		BindAddress:            "0.0.0.0",
		HTTPSPort:              6443,
		ServiceCIDR:            "10.43.0.0/16",
		ClusterCIDR:            "10.42.0.0/16",
		ClusterDomain:          "cluster.local",
		NodeMonitorGracePeriod: 40 * time.Second,
		ClusterSigningDuration: 365 * 24 * time.Hour,
		ServiceAccountIssuer:   "https://kubernetes.default.svc.cluster.local",
		ExtendTokenExpiration:  true,

		MaxMutatingRequestsInflight: defaultMutatingInflight,
	}
}

// Validate rejects bad values with a message naming the flag.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir must not be empty")
	}
	if c.HTTPSPort < 1 || c.HTTPSPort > 65535 {
		return fmt.Errorf("--https-listen-port %d: must be between 1 and 65535", c.HTTPSPort)
	}
	if net.ParseIP(c.BindAddress) == nil {
		return fmt.Errorf("--bind-address %q: not an IP address", c.BindAddress)
	}
	if c.AdvertiseAddress != "" && net.ParseIP(c.AdvertiseAddress) == nil {
		return fmt.Errorf("--advertise-address %q: not an IP address", c.AdvertiseAddress)
	}
	if _, n, err := net.ParseCIDR(c.ServiceCIDR); err != nil {
		return fmt.Errorf("--service-cidr %q: %w", c.ServiceCIDR, err)
	} else if ones, bits := n.Mask.Size(); bits-ones < 2 || bits-ones > 20 {
		return fmt.Errorf("--service-cidr %q: must hold between 4 and 2^20 addresses", c.ServiceCIDR)
	}
	if _, _, err := net.ParseCIDR(c.ClusterCIDR); err != nil {
		return fmt.Errorf("--cluster-cidr %q: %w", c.ClusterCIDR, err)
	}
	if len(c.EtcdServers) == 0 && (c.EtcdCAFile != "" || c.EtcdCertFile != "" || c.EtcdKeyFile != "") {
		return fmt.Errorf("--etcd-cafile/--etcd-certfile/--etcd-keyfile need --etcd-servers")
	}
	if (c.EtcdCertFile == "") != (c.EtcdKeyFile == "") {
		return fmt.Errorf("--etcd-certfile and --etcd-keyfile must be given together")
	}
	if _, err := agent.ParseNodeLabels(c.NodeLabels); err != nil {
		return err
	}
	if _, err := agent.ParseNodeTaints(c.NodeTaints); err != nil {
		return err
	}
	if _, err := agent.ParseRuntimeEndpoint(c.ContainerRuntimeEndpoint); err != nil {
		return err
	}
	if c.MaxMutatingRequestsInflight < 0 {
		return fmt.Errorf("--max-mutating-requests-inflight %d: must not be negative", c.MaxMutatingRequestsInflight)
	}
	if c.CNIConfDir != "" && !filepath.IsAbs(c.CNIConfDir) {
		return fmt.Errorf("--cni-conf-dir %q: must be an absolute path", c.CNIConfDir)
	}
	if c.SchedulerConfig != "" {
		if _, err := scheduler.LoadConfigFile(c.SchedulerConfig); err != nil {
			return fmt.Errorf("--scheduler-config: %w", err)
		}
	}
	if _, err := c.ClusterDNSIP(); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Subdomain(strings.TrimSuffix(c.ClusterDomain, ".")); len(errs) > 0 {
		return fmt.Errorf("--cluster-domain %q: %s", c.ClusterDomain, strings.Join(errs, "; "))
	}
	if c.ServiceLBPool != "" {
		if _, _, err := net.ParseCIDR(c.ServiceLBPool); err != nil {
			return fmt.Errorf("--service-lb-pool %q: %w", c.ServiceLBPool, err)
		}
	}
	if c.NodeMonitorGracePeriod < 0 {
		return fmt.Errorf("--node-monitor-grace-period %s: must not be negative", c.NodeMonitorGracePeriod)
	}
	if c.ClusterSigningDuration <= 0 {
		return fmt.Errorf("--cluster-signing-duration %s: must be positive", c.ClusterSigningDuration)
	}
	if err := validateIssuer(c.ServiceAccountIssuer); err != nil {
		return err
	}
	for _, p := range c.DisableAdmissionPlugins {
		if p != "ServiceAccount" {
			return fmt.Errorf("--disable-admission-plugins: %q cannot be turned off (known: ServiceAccount)", p)
		}
	}
	for _, a := range c.APIAudiences {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("--api-audiences: an audience must not be empty")
		}
	}
	return nil
}

// validateIssuer applies upstream's rule: an issuer with a colon must be
// an https URL without query or fragment; one without is an opaque name.
func validateIssuer(iss string) error {
	if iss == "" {
		return fmt.Errorf("--service-account-issuer must not be empty")
	}
	if !strings.Contains(iss, ":") {
		return nil
	}
	u, err := url.Parse(iss)
	if err != nil {
		return fmt.Errorf("--service-account-issuer %q contained a ':' but was not a valid URL: %w", iss, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--service-account-issuer %q: must be an https URL", iss)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--service-account-issuer %q: must not have a query or fragment", iss)
	}
	return nil
}

// ClusterDNSIP is the kube-dns Service's cluster IP: --cluster-dns, or the
// 10th address of --service-cidr.
func (c *Config) ClusterDNSIP() (net.IP, error) {
	_, n, err := net.ParseCIDR(c.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("--service-cidr %q: %w", c.ServiceCIDR, err)
	}
	if c.ClusterDNS == "" {
		ip, err := nthIP(n, 10)
		if err != nil {
			return nil, fmt.Errorf("--service-cidr %s has no 10th address for the cluster DNS; set --cluster-dns", c.ServiceCIDR)
		}
		return ip, nil
	}
	ip := net.ParseIP(c.ClusterDNS)
	if ip == nil {
		return nil, fmt.Errorf("--cluster-dns %q: not an IP address", c.ClusterDNS)
	}
	if !n.Contains(ip) {
		return nil, fmt.Errorf("--cluster-dns %s: not in --service-cidr %s", c.ClusterDNS, c.ServiceCIDR)
	}
	return ip, nil
}

// KubeconfigPath is where the admin kubeconfig is written.
func (c *Config) KubeconfigPath() string { return filepath.Join(c.DataDir, "admin.kubeconfig") }

// NodeTokenPath is where the agents' join token is written (mode 0600).
func (c *Config) NodeTokenPath() string { return filepath.Join(c.DataDir, "node-token") }

func (c *Config) disabledAdmission() map[string]bool {
	m := map[string]bool{}
	for _, p := range c.DisableAdmissionPlugins {
		m[p] = true
	}
	return m
}

func (c *Config) tlsDir() string { return filepath.Join(c.DataDir, "tls") }
func (c *Config) dbDir() string  { return filepath.Join(c.DataDir, "db") }

const (
	// defaultMutatingInflight is upstream's --max-mutating-requests-inflight
	// default. Small limits were measured slower (see docs/architecture.md):
	// a request holds its seat while etcd commits it, and fewer writes in
	// flight make raft's batches smaller, which cost more CPU per write.
	defaultMutatingInflight = 200
	// mutatingWaiting and mutatingWait bound the line behind the seats;
	// 15 s is upstream's longest wait in an API Priority and Fairness
	// queue (a quarter of the 60 s request timeout).
	mutatingWaiting = 1000
	mutatingWait    = 15 * time.Second
)
