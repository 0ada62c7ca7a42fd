package kubelet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// Defaults for the zero fields of Config.
const (
	DefaultLeaseRenew      = 10 * time.Second
	DefaultStatusReport    = time.Minute
	DefaultRelist          = time.Second
	DefaultCrashBackoff    = 10 * time.Second
	DefaultMaxCrashBackoff = 5 * time.Minute
	DefaultBridge          = "skiff0"
	DefaultMaxPods         = 110
	leaseDurationSeconds   = 40
)

// Config configures one Kubelet.
type Config struct {
	// Client talks to the API server.
	Client kubernetes.Interface
	// NodeName is the Node's name (required).
	NodeName string
	// NodeIP is the node's InternalIP; empty picks the host's first
	// non-loopback IPv4 address.
	NodeIP string
	// DataDir is the agent's data directory (pod logs, IPAM leases live in
	// it; ephemeral-storage is its file system).
	DataDir string
	// RuntimeEndpoint is the CRI socket.
	RuntimeEndpoint string
	// CNIConfDir is where the pod network config is written (the runtime's
	// conf_dir).
	CNIConfDir string
	// NoHostPortHandler, if set, is the runtime handler sandboxes without
	// host ports run with; its network config (the same, without portmap)
	// is written to NoHostPortCNIConfDir.
	NoHostPortHandler, NoHostPortCNIConfDir string
	// Bridge is the pod network's Linux bridge (default skiff0).
	Bridge string
	// KubeletVersion is reported in status.nodeInfo.
	KubeletVersion string
	// LeaseRenew is the Lease heartbeat period; StatusReport the longest
	// time between node status posts; Relist the period at which container
	// states are read from the runtime.
	LeaseRenew, StatusReport, Relist time.Duration
	// CrashBackoff is the first restart delay of an exited container; it
	// doubles up to MaxCrashBackoff.
	CrashBackoff, MaxCrashBackoff time.Duration
	// ClientCAs verifies the client certificates of the kubelet API (logs,
	// exec); nil leaves the API off.
	ClientCAs *x509.CertPool
	// ServerAddress and Port are where the kubelet API listens (default
	// all addresses, port 10250; tests pass a free port).
	ServerAddress string
	Port          int
	// ServingCertificate, when set, gives the kubelet API's certificate
	// (see server.Config.GetCertificate); nil serves a self-signed one.
	ServingCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClusterDNS are the resolvers of ClusterFirst pods (the kube-dns
	// Service's IP); empty makes them fall back to Default. ClusterDomain
	// is the cluster's DNS zone (their search path).
	ClusterDNS    []string
	ClusterDomain string
	// NodeLabels are set on the Node at registration (upstream's
	// --node-labels); at a restart they are merged over the existing
	// Node's labels, as K3s re-applies its --node-label (labels dropped
	// from the flag stay on the Node).
	NodeLabels map[string]string
	// RegisterWithTaints are the Node's taints when the kubelet creates it
	// (upstream's --register-with-taints); an existing Node keeps its own.
	RegisterWithTaints []corev1.Taint
	// DisableShimGroups leaves out the shim-group annotations (shimgroups.go):
	// they only mean something to the agent's own containerd.
	DisableShimGroups bool
	// ShimStartDir, if set, is where the kubelet names the shim socket of
	// a container it starts, in a file named by the container ID, for the
	// agent's shim wrapper (internal/agent/containerd/shimns.go).
	ShimStartDir string
	// VolatileDir, if set, is a directory on a tmpfs for pods' configMap,
	// secret, downwardAPI and projected volumes and their containers'
	// termination-message files (<dir>/<pod UID>/...); empty keeps them in
	// the pod dir under DataDir.
	VolatileDir string
	Logger      *slog.Logger
}

// Validate rejects an unusable config; it does not fill defaults.
func (c *Config) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("kubelet: no API client (--kubeconfig)")
	case c.NodeName == "":
		return errors.New("kubelet: --node-name is empty")
	case c.DataDir == "" || !filepath.IsAbs(c.DataDir):
		return fmt.Errorf("kubelet: --data-dir %q: must be an absolute path", c.DataDir)
	case c.RuntimeEndpoint == "":
		return errors.New("kubelet: no container runtime endpoint")
	case c.CNIConfDir == "":
		return errors.New("kubelet: no CNI conf dir")
	case (c.NoHostPortHandler == "") != (c.NoHostPortCNIConfDir == ""):
		return errors.New("kubelet: the runtime handler for pods without host ports needs a CNI conf dir, and the other way round")
	}
	if c.NodeIP != "" && net.ParseIP(c.NodeIP) == nil {
		return fmt.Errorf("kubelet: --node-ip %q: not an IP address", c.NodeIP)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("kubelet: --kubelet-port %d: out of range", c.Port)
	}
	for _, ip := range c.ClusterDNS {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("kubelet: --cluster-dns %q: not an IP address", ip)
		}
	}
	if err := ValidateNodeLabels(c.NodeLabels); err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	for _, t := range c.RegisterWithTaints {
		if err := ValidateTaint(t); err != nil {
			return fmt.Errorf("kubelet: %w", err)
		}
	}
	if len(c.Bridge) > 15 {
		return fmt.Errorf("kubelet: bridge name %q: longer than 15 bytes", c.Bridge)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"lease renew", c.LeaseRenew}, {"status report", c.StatusReport}, {"relist", c.Relist},
		{"crash back-off", c.CrashBackoff}, {"max crash back-off", c.MaxCrashBackoff}} {
		if d.v < 0 {
			return fmt.Errorf("kubelet: %s %s: must not be negative", d.name, d.v)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.KubeletVersion == "" {
		c.KubeletVersion = "v0.0.0-skiff"
	}
	if c.LeaseRenew == 0 {
		c.LeaseRenew = DefaultLeaseRenew
	}
	if c.StatusReport == 0 {
		c.StatusReport = DefaultStatusReport
	}
	if c.Relist == 0 {
		c.Relist = DefaultRelist
	}
	if c.CrashBackoff == 0 {
		c.CrashBackoff = DefaultCrashBackoff
	}
	if c.MaxCrashBackoff == 0 {
		c.MaxCrashBackoff = DefaultMaxCrashBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// podLogDir is where a pod's container logs go.
func (c *Config) podLogDir(namespace, name, uid string) string {
	return filepath.Join(c.DataDir, "agent", "pods", "logs", namespace+"_"+name+"_"+uid)
}

// ipamDir holds host-local's address leases.
func (c *Config) ipamDir() string { return filepath.Join(c.DataDir, "agent", "cni", "ipam") }

// ValidateNodeLabels applies upstream's kubelet rules for --node-labels:
// keys are qualified names and values label values, and a key in the
// kubernetes.io or k8s.io namespaces (or a subdomain of them) must be one
// the kubelet may set on its own Node: the well-known labels of
// kubeletLabels or a key in the kubelet.kubernetes.io or
// node.kubernetes.io namespaces (node-role.kubernetes.io is not one).
func ValidateNodeLabels(labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var forbidden []string
	for _, k := range keys {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("--node-label %q: invalid key: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(labels[k]); len(errs) > 0 {
			return fmt.Errorf("--node-label %s=%q: invalid value: %s", k, labels[k], strings.Join(errs, "; "))
		}
		if isKubernetesLabel(k) && !isKubeletLabel(k) {
			forbidden = append(forbidden, k)
		}
	}
	if len(forbidden) > 0 {
		return fmt.Errorf("--node-label: unknown 'kubernetes.io' or 'k8s.io' labels %s: labels in these namespaces must "+
			"begin with an allowed prefix (kubelet.kubernetes.io, node.kubernetes.io) or be in the allowed set (%s)",
			strings.Join(forbidden, ", "), strings.Join(kubeletLabels, ", "))
	}
	return nil
}

// kubeletLabels are the kubernetes.io labels a kubelet may set on its Node
// whatever their namespace (upstream's well-known kubelet labels).
var kubeletLabels = []string{
	corev1.LabelHostname, corev1.LabelTopologyZone, corev1.LabelTopologyRegion,
	corev1.LabelFailureDomainBetaZone, corev1.LabelFailureDomainBetaRegion,
	corev1.LabelInstanceType, corev1.LabelInstanceTypeStable,
	corev1.LabelOSStable, corev1.LabelArchStable, "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
}

// kubeletLabelNamespaces are the namespaces (and their subdomains) a
// kubelet may label its Node in.
var kubeletLabelNamespaces = []string{"kubelet.kubernetes.io", "node.kubernetes.io"}

func labelNamespace(key string) string {
	if i := strings.Index(key, "/"); i >= 0 {
		return key[:i]
	}
	return ""
}

func inNamespace(ns, domain string) bool { return ns == domain || strings.HasSuffix(ns, "."+domain) }

func isKubernetesLabel(key string) bool {
	ns := labelNamespace(key)
	return inNamespace(ns, "kubernetes.io") || inNamespace(ns, "k8s.io")
}

func isKubeletLabel(key string) bool {
	for _, l := range kubeletLabels {
		if key == l {
			return true
		}
	}
	ns := labelNamespace(key)
	for _, d := range kubeletLabelNamespaces {
		if inNamespace(ns, d) {
			return true
		}
	}
	return false
}

// ValidateTaint checks a taint to register as upstream validates a Node's
// taints: a qualified-name key, a label value, and one of the three effects.
func ValidateTaint(t corev1.Taint) error {
	if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
		return fmt.Errorf("--node-taint %q: invalid key: %s", t.Key, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(t.Value); len(errs) > 0 {
		return fmt.Errorf("--node-taint %s=%q: invalid value: %s", t.Key, t.Value, strings.Join(errs, "; "))
	}
	switch t.Effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return fmt.Errorf("--node-taint %s: effect %q: want NoSchedule, PreferNoSchedule or NoExecute", t.Key, t.Effect)
	}
	return nil
}
