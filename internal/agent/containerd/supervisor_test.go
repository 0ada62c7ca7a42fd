package containerd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"regexp"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The test binary doubles as a fake containerd: with fakeEnv set it reads
// the socket from --config and answers CRI Version there. fakeEnv's value
// picks a behaviour: "serve", "ignore-term" (survives SIGTERM), "mute"
// (never listens).
const fakeEnv = "SKIFF_FAKE_CONTAINERD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		fakeContainerd(mode)
		return
	}
	os.Exit(m.Run())
}

type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "fake"}, nil
}

func fakeContainerd(mode string) {
	if len(os.Args) != 3 || os.Args[1] != "--config" {
		os.Exit(3)
	}
	b, err := os.ReadFile(os.Args[2])
	if err != nil {
		os.Exit(4)
	}
	sock := regexp.MustCompile(`(?m)^\[grpc\]\n  address = "([^"]+)"`).FindSubmatch(b)[1]
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	if mode != "mute" {
		os.Remove(string(sock))
		l, err := net.Listen("unix", string(sock))
		if err != nil {
			os.Exit(5)
		}
		s := grpc.NewServer()
		runtimeapi.RegisterRuntimeServiceServer(s, fakeRuntime{})
		go s.Serve(l)
	}
	for range sig {
		if mode != "ignore-term" {
			os.Exit(0)
		}
	}
}

// run starts a supervisor of the fake and returns it with a channel of
// Run's result (which the test may consume).
func run(t *testing.T, mode string, edit func(*Config)) (*Supervisor, <-chan error, context.CancelFunc) {
	t.Helper()
	t.Setenv(fakeEnv, mode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		DataDir:      t.TempDir(),
		SandboxImage: "skiff.sh/pause:1",
		Binary:       exe,
		StartTimeout: 5 * time.Second,
		StopTimeout:  5 * time.Second,
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   50 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	returned := make(chan struct{})
	go func() {
		done <- s.Run(ctx)
		close(returned)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-returned:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
	})
	return s, done, cancel
}

func waitReady(t *testing.T, s *Supervisor, done <-chan error) {
	t.Helper()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready within 10s")
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestSupervisorRestartsAndStops(t *testing.T) {
	var prepared atomic.Int32
	s, done, cancel := run(t, "serve", func(c *Config) {
		c.Prepare = func(_ context.Context, endpoint string) error {
			if endpoint != c.Endpoint() {
				t.Errorf("Prepare got endpoint %s, want %s", endpoint, c.Endpoint())
			}
			prepared.Add(1)
			return nil
		}
	})
	waitReady(t, s, done)
	first := s.Pid()
	if first == 0 || !alive(first) {
		t.Fatalf("pid %d not running", first)
	}
	if _, err := os.Stat(s.cfg.ConfigPath()); err != nil {
		t.Errorf("config not written: %v", err)
	}
	syscall.Kill(first, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for s.Pid() == 0 || s.Pid() == first {
		if time.Now().After(deadline) {
			t.Fatal("containerd not restarted within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := s.Pid()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if alive(second) {
		t.Errorf("containerd %d still running after Run returned", second)
	}
	if n := prepared.Load(); n != 1 {
		t.Errorf("Prepare ran %d times, want once", n)
	}
	if _, err := os.Stat(s.cfg.pidPath()); !os.IsNotExist(err) {
		t.Errorf("pid file left: %v", err)
	}
}

func TestSupervisorKillsAfterStopTimeout(t *testing.T) {
	s, done, cancel := run(t, "ignore-term", func(c *Config) { c.StopTimeout = 200 * time.Millisecond })
	waitReady(t, s, done)
	pid := s.Pid()
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("stopped after %s, before the stop timeout: SIGTERM was not ignored?", d)
	}
	if alive(pid) {
		t.Errorf("containerd %d survived SIGKILL", pid)
	}
}

func TestSupervisorRestartsUnresponsive(t *testing.T) {
	s, done, _ := run(t, "mute", func(c *Config) { c.StartTimeout = 100 * time.Millisecond })
	seen := map[int]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("saw pids %v within 10s, want 3 starts", seen)
		}
		if pid := s.Pid(); pid != 0 {
			seen[pid] = true
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-s.Ready():
		t.Error("ready without a CRI answer")
	case err := <-done:
		t.Errorf("Run returned: %v", err)
	default:
	}
}

func TestSupervisorFails(t *testing.T) {
	prepareErr := errors.New("no pause image")
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want error
	}{
		{"prepare fails", func(c *Config) {
			c.Prepare = func(context.Context, string) error { return prepareErr }
		}, prepareErr},
		{"no binary", func(c *Config) { c.Binary = "/nonexistent/containerd" }, os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, done, _ := run(t, "serve", tc.edit)
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Errorf("Run: %v, want %v", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not fail")
			}
			if pid := s.Pid(); pid != 0 {
				t.Errorf("pid %d after failure", pid)
			}
		})
	}
}
