package server

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultPort is the kubelet API's port.
const DefaultPort = 10250

// Runtime is the part of the CRI the server uses.
type Runtime interface {
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatus, error)
	Exec(ctx context.Context, req *runtimeapi.ExecRequest) (string, error)
	Attach(ctx context.Context, req *runtimeapi.AttachRequest) (string, error)
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)
	PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (string, error)
}

// Config configures the kubelet API server.
type Config struct {
	// Addr is the listen address ("0.0.0.0:10250").
	Addr string
	// ClientCAs verifies client certificates; a client also needs the
	// system:masters group (the API server's kubelet client certificate).
	ClientCAs *x509.CertPool
	Runtime   Runtime
	// Hosts are the names and IPs put in the self-signed serving cert.
	Hosts []string
	// GetCertificate, when set, gives the serving certificate for each
	// handshake (the node's certificate from the cluster CA, swapped in
	// without a restart); while it returns nil the self-signed one is
	// served.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// FollowPoll is how often a followed log is re-read at its end.
	FollowPoll time.Duration
	// Stats serves /stats/summary and /metrics/resource; nil leaves them
	// answering 404 and a scrape error.
	Stats  StatsProvider
	Logger *slog.Logger
}

// Server serves the kubelet API. Create it with New, then Run it.
type Server struct {
	cfg Config
	log *slog.Logger
	ln  net.Listener
}

// New validates cfg and listens on cfg.Addr, so the port is known (Port)
// before Run.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.ClientCAs == nil:
		return nil, errors.New("kubelet server: no client CA")
	case cfg.Runtime == nil:
		return nil, errors.New("kubelet server: no runtime")
	}
	if cfg.FollowPoll == 0 {
		cfg.FollowPoll = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("kubelet server: listen on %s: %w", cfg.Addr, err)
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "kubelet-server"), ln: ln}, nil
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	cert, err := selfSigned(s.cfg.Hosts)
	if err != nil {
		s.ln.Close()
		return err
	}
	hs := &http.Server{
		Handler: s.Handler(),
		TLSConfig: &tls.Config{
			// Not Certificates: with them Go calls GetCertificate only for
			// clients sending SNI, and the API server dials an IP.
			GetCertificate: s.servingCert(&cert),
			ClientAuth:     tls.VerifyClientCertIfGiven,
			ClientCAs:      s.cfg.ClientCAs,
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() { done <- hs.ServeTLS(s.ln, "", "") }()
	s.log.Info("kubelet API listening", "addr", s.ln.Addr().String())
	select {
	case <-ctx.Done():
		hs.Close()
		<-done
		return nil
	case err := <-done:
		return fmt.Errorf("kubelet server: %w", err)
	}
}

// servingCert is the tls.Config.GetCertificate: the configured source's
// certificate, or fallback (self-signed) while it has none.
func (s *Server) servingCert(fallback *tls.Certificate) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if s.cfg.GetCertificate != nil {
			if c, err := s.cfg.GetCertificate(hello); c != nil || err != nil {
				return c, err
			}
		}
		return fallback, nil
	}
}

// Handler routes the kubelet API; every path but /healthz needs an
// authorized client certificate.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	mux.Handle("GET /containerLogs/{ns}/{pod}/{container}", s.authorized(s.serveLogs))
	mux.Handle("GET /exec/{ns}/{pod}/{container}", s.authorized(s.serveExec))
	mux.Handle("POST /exec/{ns}/{pod}/{container}", s.authorized(s.serveExec))
	mux.Handle("GET /attach/{ns}/{pod}/{container}", s.authorized(s.serveAttach))
	mux.Handle("POST /attach/{ns}/{pod}/{container}", s.authorized(s.serveAttach))
	mux.Handle("GET /portForward/{ns}/{pod}", s.authorized(s.servePortForward))
	mux.Handle("POST /portForward/{ns}/{pod}", s.authorized(s.servePortForward))
	mux.Handle("GET /stats/summary", s.authorized(s.serveSummary))
	mux.Handle("GET /metrics/resource", s.authorized(s.serveResourceMetrics))
	return mux
}

func (s *Server) authorized(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if !slices.Contains(r.TLS.PeerCertificates[0].Subject.Organization, "system:masters") {
			http.Error(w, "Forbidden", http.StatusForbidden)
			return
		}
		h(w, r)
	})
}

// findContainer returns the newest container of the pod with the given
// name, or with previous the one before it.
func (s *Server) findContainer(ctx context.Context, ns, pod, name string, previous bool) (*runtimeapi.Container, error) {
	cs, err := s.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{
		"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.name": pod, "io.kubernetes.container.name": name}})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(cs, func(a, b *runtimeapi.Container) int { return cmp.Compare(b.CreatedAt, a.CreatedAt) })
	if len(cs) == 0 {
		// The API server checked the name against the pod's spec.
		return nil, fmt.Errorf("container %q in pod %q is waiting to start: ContainerCreating: %w", name, pod, errNoContainer)
	}
	if !previous {
		return cs[0], nil
	}
	for _, c := range cs[1:] {
		if c.Labels["io.kubernetes.pod.uid"] == cs[0].Labels["io.kubernetes.pod.uid"] {
			return c, nil
		}
	}
	return nil, fmt.Errorf("previous terminated container %q in pod %q not found: %w", name, pod, errNoContainer)
}

// errNoContainer is a 400: the container has not started (or had no
// previous run); the API server has checked the name.
var errNoContainer = errors.New("no such container")

// containerError writes err of findContainer.
func containerError(w http.ResponseWriter, err error) {
	if errors.Is(err, errNoContainer) {
		msg := strings.TrimSuffix(err.Error(), ": "+errNoContainer.Error())
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// selfSigned makes the serving certificate used until the cluster CA has
// issued one. The API server does not trust it: logs and exec fail with a
// clear error until the node's serving certificate is issued.
func selfSigned(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "skiff-kubelet@" + strconv.FormatInt(now.Unix(), 10)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("kubelet server: self-signed cert: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
