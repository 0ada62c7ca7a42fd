package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-sh/skiff/internal/kubelet/cri"
)

// Supervisor runs one containerd. Create it with New, then Run it.
type Supervisor struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{}

	// shimDir holds the shim wrapper (shimns.go), "" if shims start as
	// they are; set before the first start.
	shimDir string

	mu  sync.Mutex
	pid int
}

// New validates cfg and returns a supervisor; nothing starts until Run.
func New(cfg Config) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Supervisor{cfg: cfg, log: cfg.Logger.With("component", "containerd"), ready: make(chan struct{})}, nil
}

// Ready is closed once containerd first answers CRI and Prepare has run.
func (s *Supervisor) Ready() <-chan struct{} { return s.ready }

// Endpoint is the CRI endpoint, unix://<socket>.
func (s *Supervisor) Endpoint() string { return s.cfg.Endpoint() }

// Config returns the config with defaults filled.
func (s *Supervisor) Config() Config { return s.cfg }

// LogPath is containerd's log file.
func (s *Supervisor) LogPath() string { return s.cfg.LogPath() }

// Pid is the running containerd's process id, 0 between runs.
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

func (s *Supervisor) setPid(pid int) {
	s.mu.Lock()
	s.pid = pid
	s.mu.Unlock()
}

// Run writes the config, starts containerd and keeps it running until ctx
// ends, then stops it: SIGTERM, and SIGKILL after StopTimeout. It returns
// nil after a stop caused by ctx, or the error that made supervision
// impossible (an unwritable directory, a missing binary, a failed Prepare).
func (s *Supervisor) Run(ctx context.Context) error {
	if err := s.writeFiles(); err != nil {
		return err
	}
	s.killStale()
	backoff := s.cfg.MinBackoff
	prepared := false
	for {
		started := time.Now()
		p, err := s.start()
		if err != nil {
			return err
		}
		err = p.waitReady(ctx, s.cfg.Socket(), s.cfg.StartTimeout)
		switch {
		case ctx.Err() != nil:
			s.stop(p)
			return nil
		case err != nil:
			s.log.Warn("containerd did not become ready", "pid", p.pid, "err", err, "log", s.cfg.LogPath())
			s.stop(p)
		default:
			s.log.Info("containerd ready", "pid", p.pid, "took", time.Since(started).Round(time.Millisecond), "endpoint", s.Endpoint())
			if !prepared {
				if s.cfg.Prepare != nil {
					if err := s.cfg.Prepare(ctx, s.Endpoint()); err != nil {
						s.stop(p)
						if ctx.Err() != nil {
							return nil
						}
						return fmt.Errorf("containerd: prepare: %w", err)
					}
				}
				prepared = true
				close(s.ready)
			}
			select {
			case <-ctx.Done():
				s.stop(p)
				return nil
			case <-p.exited:
				s.log.Warn("containerd exited", "pid", p.pid, "err", p.err, "ran", time.Since(started).Round(time.Millisecond), "log", s.cfg.LogPath())
			}
		}
		s.setPid(0)
		if time.Since(started) > s.cfg.MaxBackoff {
			backoff = s.cfg.MinBackoff
		}
		s.log.Info("restarting containerd", "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

func (s *Supervisor) writeFiles() error {
	for _, d := range []string{s.cfg.Dir(), s.cfg.CNIConfDir, s.cfg.RegistryDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
	}
	s.shimDir = ""
	if s.cfg.ShimMountNamespaces {
		d, err := prepareShimMountNamespaces(s.cfg.DataDir)
		if err != nil {
			return err
		}
		if d == "" {
			s.log.Warn("shims run in the agent's mount namespace: unshare or " + shimBinary + " not found")
		}
		s.shimDir = d
	}
	if s.cfg.StateTmpfs {
		onTmpfs, err := mountStateTmpfs(s.cfg.DataDir)
		if err != nil {
			return err
		}
		if !onTmpfs {
			s.log.Warn("containerd's state dir holds tasks of an agent from before the state tmpfs: kept on disk until they are gone",
				"dir", StateDir(s.cfg.DataDir))
		} else if err := linkState(s.cfg.DataDir); err != nil {
			return err
		}
	}
	if s.shimDir != "" {
		// After the state tmpfs: a directory made before it would be hidden.
		if err := os.MkdirAll(ShimStartDir(s.cfg.DataDir), 0o700); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
	}
	b, err := renderConfig(&s.cfg, !canLowerOOMScore())
	if err != nil {
		return fmt.Errorf("containerd: render config: %w", err)
	}
	if err := os.WriteFile(s.cfg.ConfigPath(), b, 0o600); err != nil {
		return fmt.Errorf("containerd: write config: %w", err)
	}
	return nil
}

// process is one started containerd.
type process struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{} // closed when the process has been waited for
	err    error         // its exit status, valid after exited
}

func (s *Supervisor) start() (*process, error) {
	logf, err := os.OpenFile(s.cfg.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("containerd: open log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(s.cfg.Binary, "--config", s.cfg.ConfigPath())
	cmd.Stdout, cmd.Stderr = logf, logf
	if s.shimDir != "" {
		// containerd 1.6's CRI ignores a runtime's runtime_path: it finds
		// the shim in PATH, so the wrapper of the same name goes first.
		cmd.Env = append(os.Environ(), "PATH="+s.shimDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	// Its own process group: a Ctrl-C meant for the agent must not reach
	// containerd before the agent decides to stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("containerd: start %s: %w", s.cfg.Binary, err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.setPid(p.pid)
	if err := os.WriteFile(s.cfg.pidPath(), []byte(strconv.Itoa(p.pid)+"\n"), 0o600); err != nil {
		s.log.Warn("write containerd pid file", "err", err)
	}
	s.log.Info("started containerd", "pid", p.pid, "config", s.cfg.ConfigPath())
	return p, nil
}

// waitReady polls the socket with CRI Version until it answers, the
// process exits, ctx ends or timeout passes.
func (p *process) waitReady(ctx context.Context, socket string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var c *cri.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	var last error
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return fmt.Errorf("exited before answering: %v", p.err)
		case <-deadline.C:
			return fmt.Errorf("no CRI answer within %s: %w", timeout, last)
		case <-tick.C:
		}
		// Dial only once the socket exists, so the first connection attempt
		// is not spent on a missing file.
		if c == nil {
			if _, err := os.Stat(socket); err != nil {
				last = err
				continue
			}
			var err error
			if c, err = cri.Dial(socket, time.Second); err != nil {
				return err
			}
		}
		if _, last = c.Version(ctx); last == nil {
			return nil
		}
	}
}

// stop sends SIGTERM, then SIGKILL after StopTimeout, and waits for the
// process. Containers keep running in their shims.
func (s *Supervisor) stop(p *process) {
	defer s.setPid(0)
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(s.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
		s.log.Info("containerd stopped", "pid", p.pid)
	case <-t.C:
		s.log.Warn("containerd did not stop after SIGTERM, killing it", "pid", p.pid, "timeout", s.cfg.StopTimeout)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	_ = os.Remove(s.cfg.pidPath())
}

// killStale stops a containerd left behind by an agent that died without
// stopping it (the pid file names it and its command line names our
// config), so the new one does not fight it for the socket and root.
func (s *Supervisor) killStale() {
	b, err := os.ReadFile(s.cfg.pidPath())
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), s.cfg.ConfigPath()) {
		return
	}
	s.log.Warn("stopping a containerd left running by an earlier agent", "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(s.cfg.StopTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
}
