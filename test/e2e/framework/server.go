package framework

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
)

// readyLine is what `skiff server` prints once it serves.
const readyLine = "skiff server is ready; kubeconfig: "

// Server is one running `skiff server` process.
type Server struct {
	t          testing.TB
	DataDir    string
	Port       int
	Kubeconfig string
	Args       []string // extra flags

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs *syncBuffer
}

// Binary is the skiff binary under test: $SKIFF_BIN, or one built once per
// test process from this checkout.
func Binary(t testing.TB) string {
	if b := os.Getenv("SKIFF_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		dir, err := os.MkdirTemp("", "skiff-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "skiff")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/skiff")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// StartServer starts a server on a free port with a fresh data directory
// and stops it when the test ends.
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, DataDir: t.TempDir(), Port: FreePort(t), Args: args}
	s.Kubeconfig = filepath.Join(s.DataDir, "admin.kubeconfig")
	// After Stop: a server that runs its own agent leaves containerd's
	// state tmpfs and the agent dir's bind mount (internal/agent/containerd).
	t.Cleanup(func() {
		if err := containerd.UnmountState(s.DataDir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	s.Start()
	t.Cleanup(s.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", s.Logs())
		}
	})
	return s
}

// Start (re)starts the process on the same data dir and port and waits for
// the ready line.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	args := append([]string{"server", "--data-dir", s.DataDir, "--https-listen-port", strconv.Itoa(s.Port),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--disable-agent"}, s.Args...)
	cmd := exec.Command(Binary(s.t), args...)
	if s.logs == nil {
		s.logs = &syncBuffer{}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = s.logs
	start := time.Now()
	if err := StartProcess(cmd); err != nil {
		s.t.Fatalf("start skiff server: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			if strings.HasPrefix(line, readyLine) {
				ready <- strings.TrimPrefix(line, readyLine)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	done := s.done
	go func() { cmd.Wait(); close(done) }()
	select {
	case path := <-ready:
		if path != s.Kubeconfig {
			s.t.Fatalf("ready line names %q, want %q", path, s.Kubeconfig)
		}
		s.t.Logf("skiff server on port %d ready after %v", s.Port, time.Since(start).Round(time.Millisecond))
	case <-done:
		s.t.Fatalf("skiff server exited before ready: %v\n%s", cmd.ProcessState, s.logs.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		s.t.Fatalf("skiff server not ready after 60s\n%s", s.logs.String())
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			s.t.Errorf("skiff server exited with %d after SIGTERM\n%s", code, s.logs.String())
		}
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("skiff server did not stop within 20s of SIGTERM\n%s", s.logs.String())
	}
	s.cmd = nil
}

// Kill9 kills the process without warning.
func (s *Server) Kill9() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Logs returns everything the process printed so far.
func (s *Server) Logs() string { return s.logs.String() }

// RESTConfig is a client config for the admin user.
func (s *Server) RESTConfig() *rest.Config {
	s.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	return cfg
}

// Client is a clientset for the admin user.
func (s *Server) Client() kubernetes.Interface {
	s.t.Helper()
	cs, err := kubernetes.NewForConfig(s.RESTConfig())
	if err != nil {
		s.t.Fatal(err)
	}
	return cs
}

// URL is the server's base URL.
func (s *Server) URL() string { return fmt.Sprintf("https://127.0.0.1:%d", s.Port) }

// Context returns a context that ends with the test (or after d).
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// FreePort returns a TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	// Below the kernel's ephemeral range (32768–60999), so that no socket
	// the kernel numbers itself (an outgoing connection, a :0 listener)
	// takes the port between this check and its use; below the NodePort
	// range (30000–32767) too. Never the same port twice in one binary.
	for i := 0; i < 1000; i++ {
		p := 20000 + rand.IntN(10000)
		if portsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		return p
	}
	t.Fatal("no free port in 20000–29999")
	return 0
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// mainTB adapts TestMain (which has no testing.T) to the framework.
type mainTB struct {
	testing.TB
	cleanups []func()
	failed   bool
}

func (m *mainTB) Helper()                         {}
func (m *mainTB) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (m *mainTB) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	m.failed = true
}
func (m *mainTB) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
func (m *mainTB) Fatal(args ...any) { m.Fatalf("%s", fmt.Sprint(args...)) }
func (m *mainTB) TempDir() string {
	d, err := os.MkdirTemp("", "skiff-e2e")
	if err != nil {
		m.Fatal(err)
	}
	m.cleanups = append(m.cleanups, func() { os.RemoveAll(d) })
	return d
}
func (m *mainTB) Cleanup(f func()) { m.cleanups = append(m.cleanups, f) }
func (m *mainTB) Failed() bool     { return m.failed }

// RunWithServer starts one server (with extra flags args) for a whole test
// package, runs the tests, stops the server and returns the exit code.
func RunWithServer(m *testing.M, s **Server, args ...string) int {
	tb := &mainTB{}
	*s = StartServer(tb, args...)
	code := m.Run()
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	if tb.failed && code == 0 {
		code = 1
	}
	return code
}
