package apiserver

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/apiserver/authn"
	"github.com/skiff-sh/skiff/internal/apiserver/openapi"
	"github.com/skiff-sh/skiff/internal/serviceaccount"
	"github.com/skiff-sh/skiff/internal/storage"
)

// maxBodyBytes is kube-apiserver's request body limit (3 MiB).
const maxBodyBytes = 3 * 1024 * 1024

// Server is the API server: an http.Handler over the registry and storage.
type Server struct {
	cfg       Config
	log       *slog.Logger
	codecs    *codecs
	handler   http.Handler
	resources map[schema.GroupVersionResource]*resource
	// byGV lists each group version's resources in discovery order.
	byGV      map[schema.GroupVersion][]*resource
	groups    []string // group names in priority order, "" first
	metrics   *metrics
	discovery *discoveryCache
	ready     atomic.Bool
	now       func() time.Time
	// kubeletTransport reaches kubelets for pods/log and pods/exec.
	kubeletTransport *http.Transport
	// emptyLookups remembers namespaces found without quotas or limit
	// ranges by a live read (admission's policy lookups).
	emptyLookups sync.Map
	// writes lines up network clients' mutating requests (nil: no limit).
	writes *writeQueue
}

// New builds the server: one store per resource, allocators restored from
// storage, routes installed. It does not listen; the caller serves
// Handler() over TLS.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		codecs:    newCodecs(),
		resources: map[schema.GroupVersionResource]*resource{},
		byGV:      map[schema.GroupVersion][]*resource{},
		metrics:   newMetrics(),
		now:       time.Now,
		writes:    newWriteQueue(cfg.MaxMutatingInFlight, cfg.MaxMutatingWaiting, cfg.MaxMutatingWait),

		kubeletTransport: newKubeletTransport(cfg.KubeletClientCert, cfg.KubeletCA),
	}
	if cfg.ServiceAccountIssuer != nil {
		cfg.Resources = append(cfg.Resources[:len(cfg.Resources):len(cfg.Resources)], s.tokenReviewResource())
	}
	seenGroup := map[string]bool{}
	for _, r := range cfg.Resources {
		if _, dup := s.resources[r.GroupVersionResource]; dup {
			return nil, fmt.Errorf("apiserver: resource %s registered twice", r.GroupVersionResource)
		}
		var store storage.Interface
		if r.Review == nil { // reviews are never stored
			var err error
			if store, err = cfg.Storage(r); err != nil {
				return nil, fmt.Errorf("storage for %s: %w", r.GroupVersionResource, err)
			}
		}
		res := newResource(r, store)
		s.resources[r.GroupVersionResource] = res
		gv := r.GroupVersion()
		s.byGV[gv] = append(s.byGV[gv], res)
		if !seenGroup[r.Group] {
			seenGroup[r.Group] = true
			s.groups = append(s.groups, r.Group)
		}
	}
	for _, list := range s.byGV {
		sort.Slice(list, func(i, j int) bool { return list[i].Resource.Resource < list[j].Resource.Resource })
	}
	if err := s.restoreAllocators(ctx); err != nil {
		return nil, err
	}
	s.discovery = newDiscoveryCache(s)
	if s.writes != nil {
		s.writes.register(s.metrics.reg)
	}

	mux := http.NewServeMux()
	oa, err := openapi.New(cfg.Resources)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	oa.Install(mux)
	mux.HandleFunc("/healthz", s.serveHealth)
	mux.HandleFunc("/healthz/", s.serveHealth)
	mux.HandleFunc("/livez", s.serveHealth)
	mux.HandleFunc("/livez/", s.serveHealth)
	mux.HandleFunc("/readyz", s.serveReady)
	mux.HandleFunc("/readyz/", s.serveReady)
	mux.HandleFunc("/version", s.serveVersion)
	mux.HandleFunc("/version/", s.serveVersion)
	mux.Handle("/metrics", s.metrics.handler())
	mux.HandleFunc("/cacerts", s.serveCACerts)
	mux.HandleFunc(serviceaccount.OpenIDConfigPath, s.serveOpenIDConfiguration)
	mux.HandleFunc(serviceaccount.JWKSPath, s.serveJWKS)
	// Profiling, as kube-apiserver's --profiling (on by default); behind
	// authentication like every non-health path.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/api", s.serveAPI)
	mux.HandleFunc("/api/", s.serveAPI)
	mux.HandleFunc("/apis", s.serveAPI)
	mux.HandleFunc("/apis/", s.serveAPI)
	mux.HandleFunc("/", s.serveNotFound)
	s.handler = s.withRecovery(withWriteStack(s.withAuthentication(mux)))
	s.ready.Store(true)
	return s, nil
}

// Handler serves every API path.
func (s *Server) Handler() http.Handler { return s.handler }

// restoreAllocators hands every stored object of resources with an
// Allocator to it, so allocations survive restarts.
func (s *Server) restoreAllocators(ctx context.Context) error {
	for _, res := range s.resources {
		if res.Allocator == nil {
			continue
		}
		list := res.NewList()
		if err := res.store.GetList(ctx, res.listKey(""), storage.ListOptions{Recursive: true}, list); err != nil {
			return fmt.Errorf("restore allocations of %s: %w", res.gr, err)
		}
		items, err := extractList(list)
		if err != nil {
			return err
		}
		res.Allocator.Restore(items)
	}
	return nil
}

func (s *Server) withRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				s.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("%v", v)), schema.GroupResource{}, "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// withAuthentication requires a verified client certificate, except for
// the health and version endpoints, which upstream serves to anyone.
func (s *Server) withAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.ClientCAs != nil && !publicPath(r.URL.Path) {
			if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
				// No certificate: a bootstrap token or 401 (authn_token.go).
				s.authenticateToken(w, r, next)
				return
			}
			r = r.WithContext(authn.WithUser(r.Context(), authn.FromCertificate(r.TLS.VerifiedChains[0][0])))
		}
		next.ServeHTTP(w, r)
	})
}

func publicPath(p string) bool {
	switch p {
	case "/healthz", "/livez", "/readyz", "/version", "/version/", "/cacerts":
		return true
	}
	return false
}

func (s *Server) serveNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeStatus(w, r, &metav1.Status{Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound, Message: "the server could not find the requested resource"})
}

// serveAPI routes /api and /apis: discovery documents or resource requests.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if s.serveDiscovery(w, r) {
		return
	}
	info, ok := parseResourcePath(r)
	if !ok {
		s.serveNotFound(w, r)
		return
	}
	gvr := schema.GroupVersionResource{Group: info.Group, Version: info.Version, Resource: info.Resource}
	res := s.resources[gvr]
	if res == nil {
		s.serveNotFound(w, r)
		return
	}
	start := time.Now()
	rw := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	if s.writes != nil && queuedWrite(r, info) {
		if err := s.writes.acquire(r.Context()); err != nil {
			s.refuseWrite(rw, r, res, err)
			s.metrics.observe(info.Verb, res.gr, info.Subresource, rw.code, time.Since(start))
			return
		}
		defer s.writes.release()
	}
	s.serveResource(rw, r, res, info)
	s.metrics.observe(info.Verb, res.gr, info.Subresource, rw.code, time.Since(start))
}

// serveResource dispatches one resource request by verb and subresource.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	if info.Namespace != "" && !res.Namespaced {
		s.serveNotFound(w, r)
		return
	}
	if res.Review != nil {
		s.serveReview(w, r, res, info)
		return
	}
	if info.Subresource != "" {
		if !res.hasSubresource(info.Subresource) {
			s.serveNotFound(w, r)
			return
		}
		s.serveSubresource(w, r, res, info)
		return
	}
	switch info.Verb {
	case "get":
		s.get(w, r, res, info)
	case "list":
		s.list(w, r, res, info)
	case "watch":
		s.watch(w, r, res, info)
	case "create":
		if info.Name != "" {
			s.methodNotAllowed(w, r)
			return
		}
		s.create(w, r, res, info)
	case "update":
		if info.Name == "" {
			s.methodNotAllowed(w, r)
			return
		}
		s.update(w, r, res, info)
	case "patch":
		if info.Name == "" {
			s.methodNotAllowed(w, r)
			return
		}
		s.patch(w, r, res, info)
	case "delete":
		s.delete(w, r, res, info)
	case "deletecollection":
		s.deleteCollection(w, r, res, info)
	default:
		s.methodNotAllowed(w, r)
	}
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	s.writeStatus(w, r, &metav1.Status{Code: http.StatusMethodNotAllowed, Reason: metav1.StatusReasonMethodNotAllowed,
		Message: fmt.Sprintf("the server does not allow this method on the requested resource")})
}

type statusRecorder struct {
	http.ResponseWriter
	code    int
	written bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.written {
		r.code, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack lets upgrade proxies (pods/exec) take the connection.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.code, r.written = http.StatusSwitchingProtocols, true
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// extractList returns a typed list's items as objects.
func extractList(list runtime.Object) ([]runtime.Object, error) {
	return meta.ExtractList(list)
}
