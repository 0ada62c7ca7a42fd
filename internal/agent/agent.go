package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/internal/kubelet"
	"github.com/skiff-sh/skiff/internal/netpol"
	"github.com/skiff-sh/skiff/internal/proxy"
)

// Config configures one node agent.
type Config struct {
	// DataDir holds containerd, images, pod logs and CNI state.
	DataDir string
	// Client talks to the API server as this node.
	Client kubernetes.Interface
	// NodeName defaults to the host name.
	NodeName string
	NodeIP   string
	// Bridge is the pod network bridge (default skiff0).
	Bridge         string
	KubeletVersion string
	// ClusterCA (PEM) verifies the API server's client certificate at the
	// kubelet API; empty leaves the kubelet API (logs, exec) off.
	ClusterCA []byte
	// KubeletPort is the kubelet API's port (default 10250).
	KubeletPort int
	// ClientCertFile, when set, is the node's client certificate and key
	// (ClientCertFile of a join) that the ClientRotator renews;
	// ClientRotated is called after each renewal (to drop the client's
	// connections, see cert_client.go).
	ClientCertFile string
	ClientRotated  func()
	// NetpolTable is the nftables table of the NetworkPolicy enforcer
	// (default skiff-netpol); DisableNetworkPolicy leaves it off.
	NetpolTable          string
	DisableNetworkPolicy bool
	// ClusterDNS and ClusterDomain are the resolver and zone of ClusterFirst
	// pods; DisableDNS turns off this node's DNS server (see dns.go).
	ClusterDNS    []string
	ClusterDomain string
	DisableDNS    bool
	// DisableHostGW turns off the routes to other nodes' podCIDRs (see
	// routes.go); pods' egress is masqueraded all the same (masq.go).
	DisableHostGW bool
	// ProxyTable is the Service proxy's nftables table (default skiff-proxy);
	// DisableProxy runs no proxy.
	ProxyTable   string
	DisableProxy bool
	// NodeLabels ("key=value", comma lists allowed) and NodeTaints
	// ("key=value:Effect") are registered with the Node (--node-label,
	// --node-taint; see nodeflags.go).
	NodeLabels, NodeTaints []string
	// ContainerRuntimeEndpoint, when set, is an existing CRI runtime
	// (containerd or CRI-O) the kubelet uses instead of a containerd of the
	// agent's own (see external.go); CNIConfDir is where the pod network's
	// config goes (default: the own containerd's, or /etc/cni/net.d with an
	// external runtime).
	ContainerRuntimeEndpoint string
	CNIConfDir               string
	Logger                   *slog.Logger
}

// Validate rejects an unusable config, naming the flag.
func (c *Config) Validate() error {
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("--data-dir %q: must be an absolute path", c.DataDir)
	}
	if c.Client == nil {
		return errors.New("--kubeconfig is required")
	}
	if _, err := ParseNodeLabels(c.NodeLabels); err != nil {
		return err
	}
	if _, err := ParseNodeTaints(c.NodeTaints); err != nil {
		return err
	}
	if _, err := ParseRuntimeEndpoint(c.ContainerRuntimeEndpoint); err != nil {
		return err
	}
	if c.CNIConfDir != "" && !filepath.IsAbs(c.CNIConfDir) {
		return fmt.Errorf("--cni-conf-dir %q: must be an absolute path", c.CNIConfDir)
	}
	return nil
}

// Agent runs containerd and the kubelet of one node.
type Agent struct {
	cfg        Config
	containerd *containerd.Supervisor // nil with an external runtime
	endpoint   string                 // the CRI endpoint the kubelet uses
	kubelet    *kubelet.Kubelet
	netpol     *netpol.Enforcer // nil when disabled
	dns        *nodeDNS         // nil with DisableDNS
	serving    *servingCerts    // nil without ClusterCA (no kubelet API)
	routes     *hostRoutes      // routes only without DisableHostGW; always the egress masquerade
	proxy      *proxy.Proxy
	ready      chan struct{}
}

// New validates cfg and builds the components; nothing starts until Run.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("--node-name: host name: %w", err)
		}
		cfg.NodeName = h
	}
	labels, _ := ParseNodeLabels(cfg.NodeLabels)
	taints, _ := ParseNodeTaints(cfg.NodeTaints)
	endpoint, _ := ParseRuntimeEndpoint(cfg.ContainerRuntimeEndpoint)
	// The runtime: a containerd of the agent's own, with a pod network
	// config without portmap for a runtime handler of its own, or an
	// external one that has neither (external.go).
	var sup *containerd.Supervisor
	cniConfDir, noHostPortHandler, noHostPortCNIConfDir, shimStartDir, podFilesDir := cfg.CNIConfDir, "", "", "", ""
	if endpoint == "" {
		var err error
		sup, err = containerd.New(containerd.Config{
			DataDir:      cfg.DataDir,
			SandboxImage: images.PauseImage,
			CNIConfDir:   cfg.CNIConfDir,
			StateTmpfs:   true,
			// runc parses the mount table several times per container.
			ShimMountNamespaces: true,
			Prepare:             images.Preparer(cfg.DataDir, cfg.Logger),
			Logger:              cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		endpoint, cniConfDir = sup.Endpoint(), sup.Config().CNIConfDir
		noHostPortHandler, noHostPortCNIConfDir = containerd.NoHostPortHandler, sup.Config().NoHostPortCNIConfDir()
		// The shim wrapper reads container starts announced there.
		shimStartDir = containerd.ShimStartDir(cfg.DataDir)
		// Secrets, tokens and the like on the state dir's tmpfs.
		podFilesDir = containerd.PodFilesDir(cfg.DataDir)
	} else if cniConfDir == "" {
		cniConfDir = DefaultExternalCNIConfDir
	}
	var clientCAs *x509.CertPool
	var serving *servingCerts
	var getServingCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if len(cfg.ClusterCA) > 0 {
		clientCAs = x509.NewCertPool()
		if !clientCAs.AppendCertsFromPEM(cfg.ClusterCA) {
			return nil, errors.New("--kubeconfig: no certificate in the cluster CA data")
		}
		serving = newServingCerts(cfg, clientCAs)
		getServingCert = serving.GetCertificate
	}
	kl, err := kubelet.New(kubelet.Config{
		ServingCertificate: getServingCert,
		Client:             cfg.Client, NodeName: cfg.NodeName, NodeIP: cfg.NodeIP, DataDir: cfg.DataDir,
		RuntimeEndpoint: endpoint, CNIConfDir: cniConfDir, Bridge: cfg.Bridge,
		NoHostPortHandler: noHostPortHandler, NoHostPortCNIConfDir: noHostPortCNIConfDir,
		// Shim groups name shims of the agent's own containerd (its
		// runtime passes the annotations on); an external one has no use
		// for them.
		DisableShimGroups: sup == nil,
		ShimStartDir:      shimStartDir,
		VolatileDir:       podFilesDir,
		NodeLabels:        labels, RegisterWithTaints: taints,
		KubeletVersion: cfg.KubeletVersion, ClientCAs: clientCAs, Port: cfg.KubeletPort, Logger: cfg.Logger,
		ClusterDNS: cfg.ClusterDNS, ClusterDomain: cfg.ClusterDomain,
	})
	if err != nil {
		return nil, err
	}
	np, err := newNetpol(cfg)
	if err != nil {
		return nil, err
	}
	px, err := newProxy(cfg)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, containerd: sup, endpoint: endpoint, kubelet: kl, netpol: np, proxy: px, serving: serving, ready: make(chan struct{})}
	if !cfg.DisableDNS {
		a.dns = newNodeDNS(cfg)
	}
	if a.routes, err = newHostRoutes(cfg); err != nil {
		return nil, err
	}
	return a, nil
}

// Ready is closed once the kubelet is ready.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// NodeName is the registered node's name.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// Run starts containerd (or waits for the external runtime), then the
// kubelet once it is ready, and stops them in reverse order when ctx ends or
// either fails.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kubeletCtx, stopKubelet := context.WithCancel(ctx)
	defer stopKubelet()
	ctrdCtx, stopContainerd := context.WithCancel(context.Background())
	defer stopContainerd()
	ctrdDone := make(chan error, 1)
	var ctrdReady <-chan struct{}
	if a.containerd != nil {
		go func() { ctrdDone <- a.containerd.Run(ctrdCtx) }()
		ctrdReady = a.containerd.Ready()
	} else {
		prepared := make(chan struct{})
		ctrdReady = prepared
		// An external runtime is not the agent's: it is waited for and
		// prepared, never started or stopped (external.go).
		go func() {
			if err := a.prepareExternal(ctrdCtx); err != nil {
				ctrdDone <- err
				return
			}
			close(prepared)
			<-ctrdCtx.Done()
			ctrdDone <- nil
		}()
	}

	select {
	case <-ctrdReady:
	case err := <-ctrdDone:
		return err
	case <-ctx.Done():
		stopContainerd()
		return <-ctrdDone
	}
	kDone := make(chan error, 1)
	go func() { kDone <- a.kubelet.Run(kubeletCtx) }()
	certsDone := a.runCerts(kubeletCtx)
	defer certsDone()
	npDone := make(chan error, 1)
	go func() { npDone <- runNetpol(kubeletCtx, a.netpol) }()
	stopNetwork := a.runNetwork(ctx)
	proxyReady, stopProxy := a.startProxy(ctx)
	defer stopProxy()
	go func() {
		select {
		case <-a.kubelet.Ready():
		case <-ctx.Done():
			return
		}
		select {
		case <-proxyReady:
			close(a.ready)
		case <-ctx.Done():
		}
	}()
	var err error
	select {
	case err = <-kDone:
		if err != nil {
			err = fmt.Errorf("kubelet: %w", err)
		}
		kDone = nil
	case err = <-ctrdDone:
		ctrdDone = nil
	case err = <-npDone:
		npDone = nil
	case <-ctx.Done():
	}
	stopNetwork()
	stopKubelet()
	if npDone != nil {
		<-npDone
	}
	if kDone != nil {
		if kerr := <-kDone; kerr != nil && err == nil && ctx.Err() == nil {
			err = kerr
		}
	}
	stopContainerd()
	if ctrdDone != nil {
		if cerr := <-ctrdDone; cerr != nil && err == nil {
			err = cerr
		}
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// runCerts keeps the kubelet's serving certificate and renews its client
// certificate (cert_serving.go, cert_client.go) until ctx ends; the
// returned func waits for them.
func (a *Agent) runCerts(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	if a.serving != nil {
		wg.Go(func() { a.serving.Run(ctx) })
	}
	if a.cfg.ClientCertFile != "" {
		r := &ClientRotator{Path: a.cfg.ClientCertFile, NodeName: a.cfg.NodeName, Client: a.cfg.Client,
			Rotated: a.cfg.ClientRotated, Logger: a.cfg.Logger}
		wg.Go(func() {
			if err := r.Run(ctx); err != nil {
				a.cfg.Logger.Error("client certificate rotation stopped", "err", err)
			}
		})
	}
	return wg.Wait
}
