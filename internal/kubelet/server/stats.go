package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/server/statsapi"
)

// StatsProvider gives the node's resource usage. With cpuAndMemory only
// the cpu and memory figures are filled (no file system walks), as the
// resource metrics need.
type StatsProvider interface {
	Summary(ctx context.Context, cpuAndMemory bool) (*statsapi.Summary, error)
}

// serveSummary is GET /stats/summary[?only_cpu_and_memory=true].
func (s *Server) serveSummary(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Stats == nil {
		http.Error(w, "stats are not available on this kubelet", http.StatusNotFound)
		return
	}
	only := false
	if v := r.URL.Query().Get("only_cpu_and_memory"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			http.Error(w, fmt.Sprintf("invalid only_cpu_and_memory %q: must be true or false", v), http.StatusBadRequest)
			return
		}
		only = b
	}
	sum, err := s.cfg.Stats.Summary(r.Context(), only)
	if err != nil {
		http.Error(w, fmt.Sprintf("failed to get node info: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(sum)
}

// serveResourceMetrics is GET /metrics/resource: the cpu and memory of the
// node, its pods and containers in the Prometheus text format, with the
// names and labels of upstream's resource metrics (what metrics-server
// scrapes).
func (s *Server) serveResourceMetrics(w http.ResponseWriter, r *http.Request) {
	var sum *statsapi.Summary
	var err error
	if s.cfg.Stats != nil {
		sum, err = s.cfg.Stats.Summary(r.Context(), true)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err != nil {
		s.log.Warn("resource metrics", "err", err)
	}
	writeResourceMetrics(w, sum, err != nil || sum == nil)
}

// metric is one family of the resource metrics.
type metric struct {
	name, help, typ string
	lines           []string
}

func (m *metric) add(labels [][2]string, v float64, t metav1.Time) {
	var b strings.Builder
	b.WriteString(m.name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l[0] + `="` + escapeLabel(l[1]) + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteString(" " + strconv.FormatFloat(v, 'g', -1, 64))
	if !t.IsZero() {
		b.WriteString(" " + strconv.FormatInt(t.UnixMilli(), 10))
	}
	m.lines = append(m.lines, b.String())
}

func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// writeResourceMetrics writes the families in upstream's order (sorted by
// name); a family without samples keeps its HELP and TYPE lines.
func writeResourceMetrics(w io.Writer, sum *statsapi.Summary, scrapeError bool) {
	const stable = "[STABLE] "
	ccpu := &metric{name: "container_cpu_usage_seconds_total", typ: "counter", help: stable + "Cumulative cpu time consumed by the container in core-seconds"}
	cmem := &metric{name: "container_memory_working_set_bytes", typ: "gauge", help: stable + "Current working set of the container in bytes"}
	cstart := &metric{name: "container_start_time_seconds", typ: "gauge", help: stable + "Start time of the container since unix epoch in seconds"}
	ncpu := &metric{name: "node_cpu_usage_seconds_total", typ: "counter", help: stable + "Cumulative cpu time consumed by the node in core-seconds"}
	nmem := &metric{name: "node_memory_working_set_bytes", typ: "gauge", help: stable + "Current working set of the node in bytes"}
	pcpu := &metric{name: "pod_cpu_usage_seconds_total", typ: "counter", help: stable + "Cumulative cpu time consumed by the pod in core-seconds"}
	pmem := &metric{name: "pod_memory_working_set_bytes", typ: "gauge", help: stable + "Current working set of the pod in bytes"}
	serr := &metric{name: "resource_scrape_error", typ: "gauge", help: stable + "1 if there was an error while getting container metrics, 0 otherwise"}
	if sum != nil {
		n := sum.Node
		if c := n.CPU; c != nil && c.UsageCoreNanoSeconds != nil {
			ncpu.add(nil, float64(*c.UsageCoreNanoSeconds)/1e9, c.Time)
		}
		if m := n.Memory; m != nil && m.WorkingSetBytes != nil {
			nmem.add(nil, float64(*m.WorkingSetBytes), m.Time)
		}
		for _, p := range sum.Pods {
			pl := [][2]string{{"namespace", p.PodRef.Namespace}, {"pod", p.PodRef.Name}}
			if c := p.CPU; c != nil && c.UsageCoreNanoSeconds != nil {
				pcpu.add(pl, float64(*c.UsageCoreNanoSeconds)/1e9, c.Time)
			}
			if m := p.Memory; m != nil && m.WorkingSetBytes != nil {
				pmem.add(pl, float64(*m.WorkingSetBytes), m.Time)
			}
			for _, c := range p.Containers {
				cl := [][2]string{{"container", c.Name}, {"namespace", p.PodRef.Namespace}, {"pod", p.PodRef.Name}}
				if u := c.CPU; u != nil && u.UsageCoreNanoSeconds != nil {
					ccpu.add(cl, float64(*u.UsageCoreNanoSeconds)/1e9, u.Time)
				}
				if m := c.Memory; m != nil && m.WorkingSetBytes != nil {
					cmem.add(cl, float64(*m.WorkingSetBytes), m.Time)
				}
				if !c.StartTime.IsZero() {
					cstart.add(cl, float64(c.StartTime.Unix()), c.StartTime)
				}
			}
		}
	}
	v := 0.0
	if scrapeError {
		v = 1
	}
	serr.add(nil, v, metav1.Time{})
	for _, m := range []*metric{ccpu, cmem, cstart, ncpu, nmem, pcpu, pmem, serr} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		for _, l := range m.lines {
			fmt.Fprintln(w, l)
		}
	}
}
