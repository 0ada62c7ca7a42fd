package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const criLog = `2026-01-02T03:04:05.000000001Z stdout F first
2026-01-02T03:04:06.000000001Z stderr P par
2026-01-02T03:04:06.500000001Z stderr F tial
2026-01-02T03:04:07.000000001Z stdout F
2026-01-02T03:04:08.000000001Z stdout F last line
`

// fakeRuntime has one container, c1, of pod default/p.
type fakeRuntime struct {
	mu      sync.Mutex
	logPath string
	state   runtimeapi.ContainerState
	// streamURL is the base of a fake runtime streaming server.
	streamURL string
}

func (f *fakeRuntime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	l := filter.GetLabelSelector()
	if l["io.kubernetes.pod.name"] != "p" || l["io.kubernetes.container.name"] != "c" {
		return nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return []*runtimeapi.Container{{Id: "c1", State: f.state, Labels: map[string]string{"io.kubernetes.pod.uid": "u"}}}, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &runtimeapi.ContainerStatus{Id: id, State: f.state, LogPath: f.logPath}, nil
}

func (f *fakeRuntime) Exec(context.Context, *runtimeapi.ExecRequest) (string, error) {
	return "", io.ErrUnexpectedEOF
}

func (f *fakeRuntime) setState(s runtimeapi.ContainerState) {
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
}

func newTestServer(t *testing.T) (*fakeRuntime, *httptest.Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(criLog), 0o600); err != nil {
		t.Fatal(err)
	}
	rt := &fakeRuntime{logPath: path, state: runtimeapi.ContainerState_CONTAINER_EXITED}
	s := &Server{cfg: Config{Runtime: rt, FollowPoll: 10 * time.Millisecond}, log: testLogger()}
	// Stand in for a verified admin client certificate.
	h := s.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test-Anonymous") == "" {
			r.TLS = &tls.ConnectionState{
				PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "admin", Organization: []string{r.Header.Get("X-Test-Group")}}}},
				VerifiedChains:   [][]*x509.Certificate{{}},
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return rt, ts
}

func get(t *testing.T, ts *httptest.Server, path string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	req.Header.Set("X-Test-Group", "system:masters")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestContainerLogs(t *testing.T) {
	_, ts := newTestServer(t)
	for _, tc := range []struct {
		query, want string
	}{
		{"", "first\npartial\n\nlast line\n"},
		{"tailLines=2", "\nlast line\n"},
		{"tailLines=3", "partial\n\nlast line\n"},
		{"tailLines=0", ""},
		{"tailLines=100", "first\npartial\n\nlast line\n"},
		{"limitBytes=8", "first\npa"},
		{"timestamps=true&tailLines=3", "2026-01-02T03:04:06.000000001Z partial\n2026-01-02T03:04:07.000000001Z \n2026-01-02T03:04:08.000000001Z last line\n"},
		{"sinceTime=2026-01-02T03:04:07Z", "\nlast line\n"},
		{"follow=true", "first\npartial\n\nlast line\n"}, // exited: follow ends at EOF
	} {
		code, got := get(t, ts, "/containerLogs/default/p/c?"+tc.query)
		if code != http.StatusOK || got != tc.want {
			t.Errorf("%s: %d %q, want %q", tc.query, code, got, tc.want)
		}
	}
	if code, body := get(t, ts, "/containerLogs/default/p/other"); code != http.StatusBadRequest || !strings.Contains(body, "is waiting to start") {
		t.Errorf("container not started: %d %q, want 400", code, body)
	}
	if code, body := get(t, ts, "/containerLogs/default/p/c?previous=true"); code != http.StatusBadRequest || !strings.Contains(body, "previous terminated container") {
		t.Errorf("no previous container: %d %q, want 400", code, body)
	}
	if code, _ := get(t, ts, "/containerLogs/default/p/c?tailLines=-1"); code != http.StatusBadRequest {
		t.Errorf("negative tailLines: %d, want 400", code)
	}
}

func TestContainerLogsFollow(t *testing.T) {
	rt, ts := newTestServer(t)
	rt.setState(runtimeapi.ContainerState_CONTAINER_RUNNING)
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/containerLogs/default/p/c?follow=true&tailLines=1", nil)
	req.Header.Set("X-Test-Group", "system:masters")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(resp.Body, buf, len("last line\n"))
	if got := string(buf[:n]); got != "last line\n" {
		t.Fatalf("first read %q", got)
	}
	f, err := os.OpenFile(rt.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A line caught half written is held back until it is complete.
	f.WriteString("2026-01-02T03:04:09.000000001Z stdout F new")
	f.Sync()
	time.Sleep(50 * time.Millisecond)
	f.WriteString(" line\n")
	f.Close()
	rt.setState(runtimeapi.ContainerState_CONTAINER_EXITED)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "new line\n" {
		t.Errorf("followed %q, want %q", rest, "new line\n")
	}
}

func TestAuthorization(t *testing.T) {
	_, ts := newTestServer(t)
	if code, _ := get(t, ts, "/containerLogs/default/p/c", "X-Test-Anonymous", "1"); code != http.StatusUnauthorized {
		t.Errorf("anonymous: %d, want 401", code)
	}
	if code, _ := get(t, ts, "/containerLogs/default/p/c", "X-Test-Group", "system:nodes"); code != http.StatusForbidden {
		t.Errorf("not system:masters: %d, want 403", code)
	}
	if code, body := get(t, ts, "/healthz", "X-Test-Anonymous", "1"); code != http.StatusOK || body != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}
	q := url.Values{"command": {"true"}, "stdout": {"1"}}
	if code, body := get(t, ts, "/exec/default/p/missing?"+q.Encode()); code != http.StatusBadRequest || !strings.Contains(body, "waiting to start") {
		t.Errorf("exec missing container: %d %q", code, body)
	}
	if code, _ := get(t, ts, "/exec/default/p/c?stdout=1"); code != http.StatusBadRequest {
		t.Errorf("exec without command: %d, want 400", code)
	}
}

func (f *fakeRuntime) Attach(context.Context, *runtimeapi.AttachRequest) (string, error) {
	return "", io.ErrUnexpectedEOF
}

func (f *fakeRuntime) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	if filter.GetLabelSelector()["io.kubernetes.pod.name"] != "p" {
		return nil, nil
	}
	return []*runtimeapi.PodSandbox{{Id: "sb1", CreatedAt: 1}}, nil
}

func (f *fakeRuntime) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.streamURL == "" {
		return "", io.ErrUnexpectedEOF
	}
	return f.streamURL + "/portforward/" + req.PodSandboxId, nil
}
