package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/apiserver"
	"github.com/skiff-sh/skiff/internal/apiserver/fieldmanager"
	"github.com/skiff-sh/skiff/internal/controller/manager"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/all"
	"github.com/skiff-sh/skiff/internal/registry/core"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/serviceaccount"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/cacher"
	"github.com/skiff-sh/skiff/internal/storage/etcd"
)

// etcdPrefix is the root of every key the API server writes, as upstream.
const etcdPrefix = "/registry"

// compactInterval is how often old etcd revisions are compacted (upstream: 5m).
const compactInterval = 5 * time.Minute

// Version is what /version reports: the Kubernetes API level of the
// k8s.io/api module skiff is built against.
var Version = version.Info{
	Major:      "1",
	Minor:      "37",
	GitVersion: "v1.37.2-skiff",
	Platform:   "linux/amd64",
}

// Server is a running control plane.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ready   chan struct{}
	stopped chan struct{}
	err     error

	etcd    *etcd.Embedded
	client  *clientv3.Client
	cachers []*cacher.Cacher
	// advertise is the address other members reach this server at.
	advertise string
	stoppers  []func() // in-process components, stopped in reverse start order
	// informers is the scheduler's and controller manager's shared cache.
	informers informers.SharedInformerFactory
	https     *http.Server
}

// New validates cfg; Start brings the server up.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, log: log, ready: make(chan struct{}), stopped: make(chan struct{})}, nil
}

// Ready is closed once the API server answers and the bootstrap objects
// exist.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run starts every component in order, blocks until ctx is cancelled or a
// component fails, then stops them in reverse order.
func (s *Server) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		if stopErr := s.stop(); err == nil {
			err = stopErr
		}
	}()
	s.log.Debug("GOMAXPROCS", "procs", setServerProcs())
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	fieldmanager.Warm()
	if err := s.startEtcd(ctx); err != nil {
		return err
	}
	go etcd.StartCompactor(ctx, s.client, compactInterval)

	ca, err := pki.LoadOrCreateCA(s.cfg.tlsDir(), "skiff-server-ca")
	if err != nil {
		return fmt.Errorf("cluster ca: %w", err)
	}
	_, serviceNet, _ := net.ParseCIDR(s.cfg.ServiceCIDR)
	firstServiceIP, err := nthIP(serviceNet, 1)
	if err != nil {
		return err
	}
	advertise := s.cfg.AdvertiseAddress
	if advertise == "" {
		advertise = defaultAdvertiseAddress()
	}
	s.advertise = advertise
	names, ips := servingNames(firstServiceIP, advertise)
	serving, err := ca.ServingCert(s.cfg.tlsDir(), names, ips)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}

	resources, err := all.Resources(core.Options{ServiceCIDR: serviceNet, NodePortBase: 30000, NodePortSize: 2768})
	if err != nil {
		return err
	}
	saKey, err := serviceaccount.LoadOrCreateKey(filepath.Join(s.cfg.tlsDir(), serviceaccount.KeyFile))
	if err != nil {
		return err
	}
	issuer := &serviceaccount.Issuer{Name: s.cfg.ServiceAccountIssuer, Audiences: s.cfg.APIAudiences, Key: saKey,
		ExtendExpiration: s.cfg.ExtendTokenExpiration}
	kubeletClient, err := kubeletClientCert(ca)
	if err != nil {
		return err
	}
	api, err := apiserver.New(ctx, apiserver.Config{
		KubeletClientCert: kubeletClient,
		KubeletCA:         ca.Pool(),
		Resources:         resources,
		Storage:           s.storageFactory(ctx),
		ClientCAs:         ca.Pool(),
		CABundle:          ca.PEM,
		ServiceCIDR:       serviceNet,
		Version:           Version,
		Logger:            s.log,

		ServiceAccountIssuer: issuer,
		DisabledAdmission:    s.cfg.disabledAdmission(),
		MaxMutatingInFlight:  s.cfg.MaxMutatingRequestsInflight,
		MaxMutatingWaiting:   mutatingWaiting,
		MaxMutatingWait:      mutatingWait,
	})
	if err != nil {
		return fmt.Errorf("api server: %w", err)
	}

	for _, c := range s.cachers {
		select {
		case <-c.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	addr := net.JoinHostPort(s.cfg.BindAddress, strconv.Itoa(s.cfg.HTTPSPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.https = &http.Server{
		Handler: api.Handler(),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{serving},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    ca.Pool(),
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"h2", "http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.https.ServeTLS(ln, "", "") }()

	kubeconfig := s.cfg.KubeconfigPath()
	server := "https://" + net.JoinHostPort(loopbackFor(s.cfg.BindAddress), strconv.Itoa(s.cfg.HTTPSPort))
	if err := ca.WriteKubeconfig(kubeconfig, server, "admin", []string{"system:masters"}); err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	clusterDNS, err := s.cfg.ClusterDNSIP()
	if err != nil {
		return err
	}
	if err := bootstrap(ctx, kubeconfig, bootstrapConfig{
		ServiceIP: firstServiceIP, ClusterDNSIP: clusterDNS, Logger: s.log, AdvertiseAddress: advertise, Port: s.cfg.HTTPSPort,
		NodeTokenPath: s.cfg.NodeTokenPath(), CAPEM: ca.PEM,
	}); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if !s.cfg.DisableScheduler || !s.cfg.DisableControllers {
		loopback, err := loopbackConfig(kubeconfig, api.Handler())
		if err != nil {
			return err
		}
		if err := s.startInformers(loopback); err != nil {
			return err
		}
		if !s.cfg.DisableScheduler {
			if err := s.startScheduler(ctx, loopback); err != nil {
				return err
			}
		}
		if !s.cfg.DisableControllers {
			if err := s.startControllers(ctx, loopback); err != nil {
				return err
			}
		}
	}
	if !s.cfg.DisableAgent {
		if err := s.startAgent(kubeconfig); err != nil {
			return err
		}
	}
	close(s.ready)
	s.log.Info("skiff server is ready", "kubeconfig", kubeconfig, "address", addr)
	// The tuner's first steps run before the executable's mappings are
	// dropped, as start-up code.
	if tune := startGCTuner(); tune != nil {
		go tune(ctx)
	}
	if n, err := releaseStartupMemory(); err != nil {
		s.log.Debug("release start-up memory", "err", err)
	} else {
		s.log.Debug("released start-up memory", "executableMappings", n)
	}

	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve https: %w", err)
	}
}

func (s *Server) startEtcd(ctx context.Context) error {
	if len(s.cfg.EtcdServers) > 0 {
		c, err := etcd.NewClient(ctx, etcd.ClientConfig{
			Endpoints: s.cfg.EtcdServers,
			CAFile:    s.cfg.EtcdCAFile, CertFile: s.cfg.EtcdCertFile, KeyFile: s.cfg.EtcdKeyFile,
		})
		if err != nil {
			return fmt.Errorf("connect to etcd %v: %w", s.cfg.EtcdServers, err)
		}
		s.client = c
		return nil
	}
	e, err := etcd.StartEmbedded(ctx, etcd.EmbeddedConfig{DataDir: s.cfg.dbDir(), Logger: s.log})
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	s.etcd, s.client = e, e.Client()
	return nil
}

// storageFactory gives each resource its etcd store behind a watch cache.
// The API server builds stores one at a time, so no locking is needed.
func (s *Server) storageFactory(ctx context.Context) apiserver.StorageFactory {
	return func(r *registry.Resource) (storage.Interface, error) {
		gr := r.GroupResource()
		store, err := etcd.New(etcd.Config{
			Client:      s.client,
			Codec:       etcd.DefaultCodec(r.GroupVersion()),
			NewFunc:     r.New,
			NewListFunc: r.NewList,
			Prefix:      etcdPrefix,
			Resource:    gr,
		})
		if err != nil {
			return nil, err
		}
		c, err := cacher.New(ctx, cacher.Config{
			Storage:     store,
			Prefix:      apiserver.StorageKeyPrefix(r),
			NewFunc:     r.New,
			NewListFunc: r.NewList,
			GetAttrs:    apiserver.AttrFunc(r),
			Resource:    gr,
			Logger:      s.log,
		})
		if err != nil {
			return nil, fmt.Errorf("watch cache for %s: %w", gr, err)
		}
		s.cachers = append(s.cachers, c)
		return c, nil
	}
}

// startInformers builds the informer factory the in-process scheduler and
// controller manager share: one cache (and one watch) per resource instead
// of one per component, as K3s gets by running them in one process. Its
// informers start when a component first asks for them and stop after
// every component has stopped.
func (s *Server) startInformers(loopback *rest.Config) error {
	rc := rest.CopyConfig(loopback)
	rc.UserAgent = "skiff-server-informers"
	rc.QPS, rc.Burst = 1000, 2000
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("shared informers: %w", err)
	}
	stop := make(chan struct{})
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTransform(dropManagedFields))
	s.informers = sharedFactory{SharedInformerFactory: f, stop: stop}
	s.stoppers = append(s.stoppers, func() {
		close(stop)
		f.Shutdown()
	})
	return nil
}

// sharedFactory is a factory its users may Start and Shutdown as if it were
// their own: informers run until the server stops them.
type sharedFactory struct {
	informers.SharedInformerFactory
	stop <-chan struct{}
}

func (f sharedFactory) Start(<-chan struct{}) { f.SharedInformerFactory.Start(f.stop) }
func (f sharedFactory) Shutdown()             {}

// dropManagedFields: no in-process component reads managedFields, and
// they are a large share of each cached object.
func dropManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

// startScheduler runs the scheduler in this process, as an API client with
// the admin credentials, and waits until its informers have synced.
func (s *Server) startScheduler(ctx context.Context, loopback *rest.Config) error {
	cfg := scheduler.Config{LeaderElect: true, Identity: s.identity(), Logger: s.log.With("component", "scheduler")}
	if s.cfg.SchedulerConfig != "" {
		fc, err := scheduler.LoadConfigFile(s.cfg.SchedulerConfig)
		if err != nil {
			return err
		}
		fc.Apply(&cfg)
	}
	cfg.Informers = s.informers
	sched, err := scheduler.NewForConfig(loopback, cfg)
	if err != nil {
		return err
	}
	stop, err := startComponent(ctx, "scheduler", sched.Run, sched.Ready())
	s.stoppers = append(s.stoppers, stop)
	return err
}

// startControllers runs the controller manager in this process, as an API
// client with the admin credentials.
func (s *Server) startControllers(ctx context.Context, loopback *rest.Config) error {
	m, err := manager.New(manager.Config{
		REST:        loopback,
		Controllers: s.cfg.Controllers, LeaderElect: true, Identity: s.identity(),
		ClusterCIDR: s.cfg.ClusterCIDR, NodeMonitorGracePeriod: s.cfg.NodeMonitorGracePeriod,
		ServiceLBPool: s.cfg.ServiceLBPool, Informers: s.informers,
		// The CSR signer signs with the cluster CA.
		ClusterSigningCertFile: filepath.Join(s.cfg.tlsDir(), pki.CACertFile),
		ClusterSigningKeyFile:  filepath.Join(s.cfg.tlsDir(), pki.CAKeyFile),
		ClusterSigningDuration: s.cfg.ClusterSigningDuration,
		Logger:                 s.log.With("component", "controller-manager"),
	})
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	stop, err := startComponent(ctx, "controller manager", m.Run, m.Ready())
	s.stoppers = append(s.stoppers, stop)
	return err
}

// startAgent runs this machine's node agent (containerd and the kubelet)
// in the process. The server does not wait for it: the node becomes Ready
// once the node IPAM controller has given it a podCIDR.
func (s *Server) startAgent(kubeconfig string) error {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	rc.UserAgent = "skiff-agent"
	rc.QPS, rc.Burst = 50, 100
	// Protobuf, as `skiff agent` and upstream's kubelet.
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	dir, err := filepath.Abs(s.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	clusterDNS, err := s.cfg.ClusterDNSIP()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a, err := agent.New(agent.Config{DataDir: dir, Client: cs, NodeIP: s.advertise, Bridge: s.cfg.PodBridge,
		KubeletVersion: Version.GitVersion, ClusterCA: rc.CAData, ClusterDNS: []string{clusterDNS.String()},
		ClusterDomain: s.cfg.ClusterDomain, DisableDNS: s.cfg.DisableDNS,
		NodeLabels: s.cfg.NodeLabels, NodeTaints: s.cfg.NodeTaints,
		ContainerRuntimeEndpoint: s.cfg.ContainerRuntimeEndpoint, CNIConfDir: s.cfg.CNIConfDir,
		Logger: s.log.With("component", "agent")})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	started := make(chan struct{})
	close(started)
	stop, err := startComponent(context.Background(), "agent", func(ctx context.Context) error {
		go func() {
			select {
			case <-a.Ready():
				s.log.Info("node agent is ready", "node", a.NodeName())
			case <-ctx.Done():
			}
		}()
		err := a.Run(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("node agent stopped", "err", err)
		}
		return err
	}, started)
	s.stoppers = append(s.stoppers, stop)
	return err
}

// identity names this server in leader-election Leases.
func (s *Server) identity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s_%s", host, net.JoinHostPort(s.advertise, strconv.Itoa(s.cfg.HTTPSPort)))
}

// startComponent runs an API-client component with its own context: on
// shutdown it must stop (and hand its Lease back) while the API server
// still answers. It waits for ready and returns the component's stop.
func startComponent(ctx context.Context, name string, run func(context.Context) error, ready <-chan struct{}) (func(), error) {
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		errc <- run(cctx)
	}()
	select {
	case <-ready:
		return stop, nil
	case err := <-errc:
		return stop, fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
		return stop, ctx.Err()
	}
}

// stop shuts components down in reverse start order.
func (s *Server) stop() error {
	var errs []error
	for i := len(s.stoppers) - 1; i >= 0; i-- {
		s.stoppers[i]()
	}
	if s.https != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.https.Shutdown(ctx); err != nil {
			s.https.Close()
		}
		cancel()
	}
	for _, c := range s.cachers {
		c.Stop()
	}
	if s.etcd != nil {
		if err := s.etcd.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop etcd: %w", err))
		}
	} else if s.client != nil {
		s.client.Close()
	}
	close(s.stopped)
	return errors.Join(errs...)
}

// nthIP returns the n-th address of a network (1 = first usable).
func nthIP(n *net.IPNet, i int) (net.IP, error) {
	ip := make(net.IP, len(n.IP))
	copy(ip, n.IP)
	for k := len(ip) - 1; k >= 0 && i > 0; k-- {
		sum := int(ip[k]) + i
		ip[k] = byte(sum)
		i = sum >> 8
	}
	if !n.Contains(ip) {
		return nil, fmt.Errorf("%s has no address %d", n, i)
	}
	return ip, nil
}

// servingNames lists the names and addresses the serving certificate must
// cover: loopback, the host, the advertise address, the kubernetes Service.
func servingNames(serviceIP net.IP, advertise string) ([]string, []net.IP) {
	names := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), serviceIP}
	if ip := net.ParseIP(advertise); ip != nil {
		ips = append(ips, ip)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
				ips = append(ips, n.IP)
			}
		}
	}
	return names, dedupIPs(ips)
}

func dedupIPs(ips []net.IP) []net.IP {
	seen := map[string]bool{}
	out := ips[:0]
	for _, ip := range ips {
		if !seen[ip.String()] {
			seen[ip.String()] = true
			out = append(out, ip)
		}
	}
	return out
}

// defaultAdvertiseAddress is the first non-loopback IPv4 address, or
// 127.0.0.1 on a host without one.
func defaultAdvertiseAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// loopbackFor is the address local clients use to reach a server bound to
// bind.
func loopbackFor(bind string) string {
	ip := net.ParseIP(bind)
	if ip == nil || ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			return "::1"
		}
		return "127.0.0.1"
	}
	return bind
}

// kubeletClientCert is the API server's certificate at kubelets (logs,
// exec), issued in memory at every start.
func kubeletClientCert(ca *pki.CA) (*tls.Certificate, error) {
	certPEM, keyPEM, err := ca.Issue(pki.LeafRequest{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}})
	if err != nil {
		return nil, fmt.Errorf("kubelet client certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("kubelet client certificate: %w", err)
	}
	return &cert, nil
}
