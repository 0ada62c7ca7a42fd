package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// LeaseName is the kube-system Lease the active controller manager holds.
const LeaseName = "kube-controller-manager"

// Config configures a controller manager.
type Config struct {
	// REST reaches the API server.
	REST *rest.Config
	// Controllers selects controllers as upstream's --controllers does:
	// "*" all, "name" one, "-name" all but that one. Empty means "*".
	Controllers []string
	// LeaderElect runs the controllers only while holding the Lease.
	LeaderElect bool
	// Identity names this candidate in the Lease (default: host name and a
	// random suffix).
	Identity               string
	ClusterCIDR            string
	NodeCIDRMaskSize       int
	NodeMonitorGracePeriod time.Duration
	// TerminatedPodGCThreshold: pod GC deletes terminated pods beyond this
	// many (0: the default 12500; negative: never).
	TerminatedPodGCThreshold int
	// ServiceLBPool, when set, is the CIDR the ServiceLB controller hands
	// LoadBalancer addresses out of (default: the Ready nodes' IPs).
	ServiceLBPool string
	// ClusterSigningCertFile and ClusterSigningKeyFile are the CA the CSR
	// signer issues kubelet certificates with (empty: no signer runs).
	ClusterSigningCertFile string
	ClusterSigningKeyFile  string
	// ClusterSigningDuration is the longest lifetime of a certificate the
	// signer issues (0: one year).
	ClusterSigningDuration time.Duration
	// MetricsBindAddress, when set, serves the controllers' sync metrics
	// at http://<address>/metrics.
	MetricsBindAddress string
	Logger             *slog.Logger
	// Informers, if set, is a factory shared with other components of the
	// same process (skiff server) and kept across leadership terms; it
	// must drop managedFields. Nil: a fresh factory per term.
	Informers informers.SharedInformerFactory
}

// Names lists every known controller.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Validate rejects an incomplete or inconsistent config, naming the flag.
func (c *Config) Validate() error {
	if c.REST == nil {
		return errors.New("controller manager: no API server configuration")
	}
	if _, err := c.enabled(); err != nil {
		return err
	}
	if c.ClusterCIDR != "" {
		_, n, err := net.ParseCIDR(c.ClusterCIDR)
		if err != nil {
			return fmt.Errorf("--cluster-cidr: %w", err)
		}
		ones, bits := n.Mask.Size()
		if c.NodeCIDRMaskSize != 0 && (c.NodeCIDRMaskSize < ones || c.NodeCIDRMaskSize > bits) {
			return fmt.Errorf("--node-cidr-mask-size %d does not fit in --cluster-cidr %s", c.NodeCIDRMaskSize, c.ClusterCIDR)
		}
	}
	if c.ServiceLBPool != "" {
		if _, _, err := net.ParseCIDR(c.ServiceLBPool); err != nil {
			return fmt.Errorf("--service-lb-pool: %w", err)
		}
	}
	if (c.ClusterSigningCertFile == "") != (c.ClusterSigningKeyFile == "") {
		return errors.New("--cluster-signing-cert-file and --cluster-signing-key-file must be given together")
	}
	if c.ClusterSigningDuration < 0 {
		return errors.New("--cluster-signing-duration must not be negative")
	}
	if c.NodeMonitorGracePeriod < 0 {
		return errors.New("--node-monitor-grace-period must not be negative")
	}
	if c.MetricsBindAddress != "" {
		if _, _, err := net.SplitHostPort(c.MetricsBindAddress); err != nil {
			return fmt.Errorf("--metrics-bind-address: %w", err)
		}
	}
	return nil
}

// enabled resolves Controllers to the set of controller names to run.
func (c *Config) enabled() ([]string, error) {
	sel := c.Controllers
	if len(sel) == 0 {
		sel = []string{"*"}
	}
	on := map[string]bool{}
	star := false
	for _, s := range sel {
		neg := strings.HasPrefix(s, "-")
		name := strings.TrimSuffix(strings.TrimPrefix(s, "-"), "-controller")
		if a, ok := aliases[name]; ok {
			name = a
		}
		if name == "*" {
			star = true
			continue
		}
		if _, ok := registry[name]; !ok {
			return nil, fmt.Errorf("--controllers: unknown controller %q (known: %s)", s, strings.Join(Names(), ", "))
		}
		on[name] = !neg
	}
	var out []string
	for _, n := range Names() {
		v, set := on[n]
		if (set && v) || (!set && star) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Manager runs controllers.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	names   []string
	client  kubernetes.Interface
	meta    metadata.Interface
	disc    discovery.CachedDiscoveryInterface
	ready   chan struct{}
	readyMu sync.Once
	termMu  sync.Mutex // held while a leadership term's controllers run
	metrics *metrics.Metrics
}

// New builds a manager; Run starts it.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	names, _ := cfg.enabled()
	if cfg.NodeCIDRMaskSize == 0 {
		cfg.NodeCIDRMaskSize = 24
	}
	if cfg.NodeMonitorGracePeriod == 0 {
		cfg.NodeMonitorGracePeriod = 40 * time.Second
	}
	if cfg.TerminatedPodGCThreshold == 0 {
		cfg.TerminatedPodGCThreshold = 12500
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	rc := rest.CopyConfig(cfg.REST)
	if rc.UserAgent == "" {
		rc.UserAgent = "skiff-controller-manager"
	}
	rc.QPS, rc.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(withProtobuf(rc))
	if err != nil {
		return nil, err
	}
	mc, err := metadata.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, log: log, names: names, client: cs, meta: mc, disc: memory.NewMemCacheClient(dc),
		ready: make(chan struct{}), metrics: metrics.New()}, nil
}

// rootCA is the CA that verifies the API server, as upstream's
// controller manager takes it from its kubeconfig without --root-ca-file.
func rootCA(rc *rest.Config) []byte {
	if rc == nil {
		return nil
	}
	if len(rc.TLSClientConfig.CAData) > 0 {
		return rc.TLSClientConfig.CAData
	}
	if rc.TLSClientConfig.CAFile != "" {
		if b, err := os.ReadFile(rc.TLSClientConfig.CAFile); err == nil {
			return b
		}
	}
	return nil
}

func withProtobuf(rc *rest.Config) *rest.Config {
	c := rest.CopyConfig(rc)
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return c
}

// NewFromKubeconfig builds a leader-electing manager from a kubeconfig file.
func NewFromKubeconfig(path string, cfg Config) (*Manager, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	cfg.REST = rc
	return New(cfg)
}

// Ready is closed once the manager runs its controllers or campaigns for
// the Lease.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

func (m *Manager) markReady() { m.readyMu.Do(func() { close(m.ready) }) }

// Enabled lists the controllers this manager runs.
func (m *Manager) Enabled() []string { return append([]string(nil), m.names...) }

// Lease timing as kube-controller-manager's defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// Metrics are the sync metrics of this manager's controllers (across
// leadership terms).
func (m *Manager) Metrics() *metrics.Metrics { return m.metrics }

// serveMetrics listens on MetricsBindAddress and serves /metrics until ctx
// ends.
func (m *Manager) serveMetrics(ctx context.Context) error {
	ln, err := net.Listen("tcp", m.cfg.MetricsBindAddress)
	if err != nil {
		return fmt.Errorf("--metrics-bind-address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server stopped", "err", err)
		}
	}()
	m.log.Info("serving controller metrics", "address", ln.Addr().String())
	return nil
}

// Run runs the controllers until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	if m.cfg.MetricsBindAddress != "" {
		if err := m.serveMetrics(ctx); err != nil {
			return err
		}
	}
	if !m.cfg.LeaderElect {
		return m.runControllers(ctx)
	}
	id := m.cfg.Identity
	if id == "" {
		host, _ := os.Hostname()
		id = host + "_" + string(uuid.NewUUID())
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: LeaseName},
		Client:     m.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	m.markReady()
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			ReleaseOnCancel: true, Name: LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					// A term's controllers must be gone before the next
					// term's start: two sets at once would act twice.
					m.termMu.Lock()
					defer m.termMu.Unlock()
					if lctx.Err() != nil {
						return
					}
					m.log.Info("controller manager is leading", "identity", id, "controllers", strings.Join(m.names, ","))
					if err := m.runControllers(lctx); err != nil && lctx.Err() == nil {
						m.log.Error("controllers stopped", "err", err)
					}
				},
				OnStoppedLeading: func() { m.log.Info("controller manager stopped leading", "identity", id) },
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
	}
	return nil
}

// runControllers builds the shared informers and every enabled controller,
// runs them until ctx ends and waits for them to return.
func (m *Manager) runControllers(ctx context.Context) error {
	opts := controller.Options{
		NodeCIDRMaskSize:         m.cfg.NodeCIDRMaskSize,
		NodeMonitorGracePeriod:   m.cfg.NodeMonitorGracePeriod,
		TerminatedPodGCThreshold: m.cfg.TerminatedPodGCThreshold,
		ClusterSigningCertFile:   m.cfg.ClusterSigningCertFile,
		ClusterSigningKeyFile:    m.cfg.ClusterSigningKeyFile,
		ClusterSigningDuration:   m.cfg.ClusterSigningDuration,
		RootCA:                   rootCA(m.cfg.REST),
	}
	if m.cfg.ClusterCIDR != "" {
		_, opts.ClusterCIDR, _ = net.ParseCIDR(m.cfg.ClusterCIDR)
	}
	if m.cfg.ServiceLBPool != "" {
		_, opts.ServiceLBPool, _ = net.ParseCIDR(m.cfg.ServiceLBPool)
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	m.disc.Invalidate()
	cc := &controller.Context{
		Client:            m.client,
		Metadata:          m.meta,
		Discovery:         m.disc,
		Informers:         m.informers(),
		MetadataInformers: metadatainformer.NewSharedInformerFactoryWithOptions(m.meta, 0, metadatainformer.WithTransform(trimManagedFields)),
		Broadcaster:       broadcaster,
		Logger:            m.log,
		Options:           opts,
		Metrics:           m.metrics,
	}
	type running struct {
		name    string
		c       controller.Controller
		workers int
	}
	var all []running
	for _, n := range m.names {
		d := registry[n]
		c, err := d.new(cc)
		if err != nil {
			return fmt.Errorf("controller %s: %w", n, err)
		}
		if c == nil {
			continue // not applicable with this configuration
		}
		all = append(all, running{n, c, d.workers})
	}
	cc.Informers.Start(ctx.Done())
	cc.MetadataInformers.Start(ctx.Done())
	defer cc.Informers.Shutdown()
	defer cc.MetadataInformers.Shutdown()
	for t, ok := range cc.Informers.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer for %v did not sync: %w", t, ctx.Err())
		}
	}
	m.markReady()
	var wg sync.WaitGroup
	for _, r := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.c.Run(ctx, r.workers)
		}()
	}
	wg.Wait()
	return nil
}

// informers is the shared factory from Config, or a fresh one per
// leadership term.
func (m *Manager) informers() informers.SharedInformerFactory {
	if m.cfg.Informers != nil {
		return m.cfg.Informers
	}
	return informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithTransform(trimManagedFields))
}

// trimManagedFields drops managedFields from cached objects: controllers
// never read them, and they are a large share of each object's memory.
func trimManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
