package proxy

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the proxy's syncs. The Prometheus collectors are the
// proxy's own (register them where they are served); Snapshot is for the
// bench and tests.
type Metrics struct {
	SyncDuration *prometheus.HistogramVec // by kind: full, partial
	SyncErrors   prometheus.Counter

	mu       sync.Mutex
	syncs    int
	full     int
	errors   int
	last     time.Duration
	lastFull time.Duration
	applied  time.Time
}

func newMetrics() *Metrics {
	return &Metrics{
		SyncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skiff_proxy_sync_duration_seconds",
			Help:    "Time to compute and apply one nftables transaction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"kind"}),
		SyncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_proxy_sync_errors_total",
			Help: "Transactions nftables rejected (each is followed by a full rebuild).",
		}),
	}
}

// Collectors returns the Prometheus collectors to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.SyncDuration, m.SyncErrors}
}

func (m *Metrics) observe(full bool, d time.Duration, err error) {
	kind := "partial"
	if full {
		kind = "full"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.errors++
		m.SyncErrors.Inc()
		return
	}
	m.SyncDuration.WithLabelValues(kind).Observe(d.Seconds())
	m.syncs++
	m.last = d
	m.applied = time.Now()
	if full {
		m.full++
		m.lastFull = d
	}
}

// Snapshot is a copy of the counters.
type Snapshot struct {
	Syncs, FullSyncs, Errors int
	Last, LastFull           time.Duration
	LastApplied              time.Time
}

// Snapshot returns the counters so far.
func (m *Metrics) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Snapshot{Syncs: m.syncs, FullSyncs: m.full, Errors: m.errors, Last: m.last, LastFull: m.lastFull, LastApplied: m.applied}
}
