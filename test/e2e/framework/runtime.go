package framework

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
)

// RequireRoot skips a test that needs root (containerd, network
// namespaces) and fails one whose host lacks the node packages.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs containerd, runc and CNI plugins")
	}
	for _, bin := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not installed: run hack/install-deps.sh", bin)
		}
	}
}

// Runtime is a supervised containerd of a test, with a CRI client.
type Runtime struct {
	*containerd.Supervisor
	CRI *cri.Client
	// Stop stops containerd and waits for the supervisor to return; it runs
	// at cleanup if the test did not call it.
	Stop func()
}

// StartRuntime starts a supervised containerd in dataDir as an agent would
// (pause image built and imported, <dataDir>/agent/images/*.tar imported)
// and waits until it is ready. edit, if not nil, adjusts the config.
func StartRuntime(t testing.TB, dataDir string, edit func(*containerd.Config)) *Runtime {
	t.Helper()
	log := slog.New(slog.NewTextHandler(TestWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := containerd.Config{
		DataDir:      dataDir,
		SandboxImage: images.PauseImage,
		MinBackoff:   100 * time.Millisecond,
		MaxBackoff:   2 * time.Second,
		Prepare:      images.Preparer(dataDir, log),
		Logger:       log,
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := containerd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("containerd supervisor: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("containerd supervisor did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log %s", tail(s.LogPath()))
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		stopped = true
		t.Fatalf("containerd supervisor returned before ready: %v\n%s", err, tail(s.LogPath()))
	case <-time.After(3 * time.Minute): // the first pause build compiles
		t.Fatalf("containerd not ready within 3m\n%s", tail(s.LogPath()))
	}
	c, err := cri.Dial(s.Endpoint(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Runtime{Supervisor: s, CRI: c, Stop: stop}
}

// tail returns the end of a log file for a failure message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return path + ":\n" + string(b)
}

// TestWriter writes each line to t.Log.
func TestWriter(t testing.TB) *testWriter { return &testWriter{t: t} }

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-min(1, len(p))]))
	return len(p), nil
}
