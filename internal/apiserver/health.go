package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	s.writeCheck(w, r, nil)
}

// serveReady reports ready when storage answers.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	var err error
	if !s.ready.Load() {
		err = errNotReady
	} else {
		for _, res := range s.resources {
			if res.store == nil {
				continue // a review
			}
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			_, err = res.store.CurrentRevision(ctx)
			cancel()
			break
		}
	}
	s.writeCheck(w, r, err)
}

type readyErr string

func (e readyErr) Error() string { return string(e) }

const errNotReady = readyErr("not ready")

func (s *Server) writeCheck(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("[-]etcd failed: " + err.Error() + "\nhealthz check failed\n"))
		return
	}
	if r.URL.Query().Has("verbose") {
		_, _ = w.Write([]byte("[+]ping ok\n[+]etcd ok\nhealthz check passed\n"))
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.cfg.Version)
}

// metrics are the server's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "Counter of apiserver requests broken out for each verb, group, resource, subresource and HTTP response code.",
		}, []string{"verb", "group", "resource", "subresource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "Response latency distribution in seconds for each verb, group, resource and subresource.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"verb", "group", "resource", "subresource"}),
	}
	m.reg.MustRegister(m.requests, m.latency, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(verb string, gr schema.GroupResource, sub string, code int, d time.Duration) {
	m.requests.WithLabelValues(verb, gr.Group, gr.Resource, sub, httpCode(code)).Inc()
	if verb != "watch" {
		m.latency.WithLabelValues(verb, gr.Group, gr.Resource, sub).Observe(d.Seconds())
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func httpCode(code int) string {
	return strconv.Itoa(code)
}
