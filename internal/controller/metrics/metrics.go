package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the sync metrics of the controllers of one manager.
type Metrics struct {
	reg      *prometheus.Registry
	syncs    *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New returns metrics in a registry of their own, with the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_controller_sync_total",
			Help: "Number of syncs a controller ran, successful or not.",
		}, []string{"controller"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_controller_sync_errors_total",
			Help: "Number of syncs a controller ran that returned an error (and were retried).",
		}, []string{"controller"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_controller_sync_duration_seconds",
			Help:    "Time one sync of a controller took, in seconds.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"controller"}),
	}
	m.reg.MustRegister(m.syncs, m.errors, m.duration,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// ObserveSync records one sync of controller that began at start and
// ended with err.
func (m *Metrics) ObserveSync(controller string, start time.Time, err error) {
	if m == nil {
		return
	}
	m.syncs.WithLabelValues(controller).Inc()
	if err != nil {
		m.errors.WithLabelValues(controller).Inc()
	}
	m.duration.WithLabelValues(controller).Observe(time.Since(start).Seconds())
}

// Timed runs sync and records it as one sync of controller.
func (m *Metrics) Timed(controller string, sync func() error) error {
	start := time.Now()
	err := sync()
	m.ObserveSync(controller, start, err)
	return err
}

// Registry is the registry the metrics live in, for tests and for other
// collectors of the same process.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
