package framework

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Background is a kubectl that keeps running (port-forward, attach,
// logs -f) while the test goes on; Stop ends it.
type Background struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  strings.Builder
	errb strings.Builder
	in   io.WriteCloser
}

type bgWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w bgWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Start runs kubectl with args in the background with a pipe as its stdin;
// the test's cleanup stops it.
func (k *Kubectl) Start(args ...string) *Background {
	k.t.Helper()
	return k.start(exec.Command(k.bin, args...))
}

// StartTTY is Start with kubectl on a pseudo-terminal (through
// util-linux's script), for -t; its stdin and output are the terminal's.
func (k *Kubectl) StartTTY(args ...string) *Background {
	k.t.Helper()
	line := k.bin
	for _, a := range args {
		line += " '" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return k.start(exec.Command("script", "-qfec", line, "/dev/null"))
}

func (k *Kubectl) start(cmd *exec.Cmd) *Background {
	k.t.Helper()
	cmd.Env = append([]string{"HOME=" + k.home, "KUBECONFIG=" + k.s.Kubeconfig, "PATH=" + os.Getenv("PATH")}, k.Env...)
	b := &Background{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = bgWriter{&b.mu, &b.out}, bgWriter{&b.mu, &b.errb}
	in, err := cmd.StdinPipe()
	if err != nil {
		k.t.Fatal(err)
	}
	b.in = in
	if err := StartProcess(cmd); err != nil {
		k.t.Fatal(err)
	}
	go func() { cmd.Wait(); close(b.done) }()
	k.t.Cleanup(b.Stop)
	return b
}

// Stdin is the process's standard input.
func (b *Background) Stdin() io.WriteCloser { return b.in }

// Output returns what the process wrote so far.
func (b *Background) Output() (stdout, stderr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String(), b.errb.String()
}

// WaitOutput waits until stdout contains s; false if the process ends or
// the timeout passes first.
func (b *Background) WaitOutput(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if out, _ := b.Output(); strings.Contains(out, s) {
			return true
		}
		select {
		case <-b.done:
			out, _ := b.Output()
			return strings.Contains(out, s)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// Done is closed when the process has exited.
func (b *Background) Done() <-chan struct{} { return b.done }

// ExitCode is the exit code once Done is closed.
func (b *Background) ExitCode() int { return b.cmd.ProcessState.ExitCode() }

// Stop interrupts the process and waits for it (killing it after 10 s).
func (b *Background) Stop() {
	select {
	case <-b.done:
		return
	default:
	}
	b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		<-b.done
	}
}
