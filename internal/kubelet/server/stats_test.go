package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/server/statsapi"
)

type fakeStats struct {
	sum  *statsapi.Summary
	err  error
	only bool
}

func (f *fakeStats) Summary(_ context.Context, cpuAndMemory bool) (*statsapi.Summary, error) {
	f.only = cpuAndMemory
	return f.sum, f.err
}

func u64(v uint64) *uint64 { return &v }

func testSummary() *statsapi.Summary {
	now := metav1.NewTime(time.Unix(1700000000, 0))
	return &statsapi.Summary{
		Node: statsapi.NodeStats{NodeName: "n1",
			CPU:    &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: u64(2_500_000_000)},
			Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u64(1 << 30)}},
		Pods: []statsapi.PodStats{{
			PodRef: statsapi.PodReference{Name: "p", Namespace: "ns", UID: "u"},
			CPU:    &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: u64(500_000_000)},
			Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u64(4096)},
			Containers: []statsapi.ContainerStats{{Name: `c"1`, StartTime: now,
				CPU:    &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: u64(250_000_000)},
				Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u64(2048)}}},
		}},
	}
}

func statsServer(t *testing.T, st StatsProvider) *httptest.Server {
	t.Helper()
	s := &Server{cfg: Config{Stats: st}, log: testLogger()}
	h := s.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.TLS = &tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}}},
			VerifiedChains:   [][]*x509.Certificate{{}},
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func getURL(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSummaryHandler(t *testing.T) {
	f := &fakeStats{sum: testSummary()}
	ts := statsServer(t, f)
	for _, tc := range []struct {
		query    string
		code     int
		only     bool
		contains string
	}{
		{"", 200, false, `"usageCoreNanoSeconds": 2500000000`},
		{"?only_cpu_and_memory=true", 200, true, `"nodeName": "n1"`},
		{"?only_cpu_and_memory=maybe", 400, false, `invalid only_cpu_and_memory "maybe"`},
	} {
		code, body := getURL(t, ts.URL+"/stats/summary"+tc.query)
		if code != tc.code || !strings.Contains(body, tc.contains) || (code == 200 && f.only != tc.only) {
			t.Errorf("%q: %d %q (only %v), want %d containing %q (only %v)", tc.query, code, body, f.only, tc.code, tc.contains, tc.only)
		}
		if code == 200 {
			var s statsapi.Summary
			if err := json.Unmarshal([]byte(body), &s); err != nil || s.Pods[0].PodRef.UID != "u" {
				t.Errorf("%q: decode: %v", tc.query, err)
			}
		}
	}
	f.err = errors.New("runtime down")
	if code, body := getURL(t, ts.URL+"/stats/summary"); code != 500 || !strings.Contains(body, "runtime down") {
		t.Errorf("runtime error: %d %q", code, body)
	}
	if code, _ := getURL(t, statsServer(t, nil).URL+"/stats/summary"); code != 404 {
		t.Errorf("no stats provider: %d, want 404", code)
	}
}

func TestResourceMetrics(t *testing.T) {
	var b bytes.Buffer
	writeResourceMetrics(&b, testSummary(), false)
	text := b.String()
	for _, want := range []string{
		"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n" +
			`container_cpu_usage_seconds_total{container="c\"1",namespace="ns",pod="p"} 0.25 1700000000000` + "\n",
		`container_memory_working_set_bytes{container="c\"1",namespace="ns",pod="p"} 2048 1700000000000`,
		`container_start_time_seconds{container="c\"1",namespace="ns",pod="p"} 1.7e+09 1700000000000`,
		"node_cpu_usage_seconds_total 2.5 1700000000000\n",
		"node_memory_working_set_bytes 1.073741824e+09 1700000000000\n",
		`pod_cpu_usage_seconds_total{namespace="ns",pod="p"} 0.5 1700000000000`,
		`pod_memory_working_set_bytes{namespace="ns",pod="p"} 4096 1700000000000`,
		"# TYPE resource_scrape_error gauge\nresource_scrape_error 0\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	b.Reset()
	writeResourceMetrics(&b, nil, true)
	if !strings.HasSuffix(b.String(), "resource_scrape_error 1\n") || strings.Count(b.String(), "# TYPE") != 8 {
		t.Errorf("scrape error:\n%s", b.String())
	}
	f := &fakeStats{err: errors.New("down")}
	if code, body := getURL(t, statsServer(t, f).URL+"/metrics/resource"); code != 200 || !strings.Contains(body, "resource_scrape_error 1") || !f.only {
		t.Errorf("/metrics/resource with a failing provider: %d %q", code, body)
	}
}
