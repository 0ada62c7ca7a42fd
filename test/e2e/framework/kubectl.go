package framework

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// KubectlDir holds the versioned kubectl binaries on this machine.
const KubectlDir = "/usr/lib/google-cloud-sdk/bin"

// DefaultKubectl is the version the acceptance tests use by default.
const DefaultKubectl = "1.32"

// Kubectl runs one kubectl version against a server with a fresh HOME (no
// cached discovery) and default flags.
type Kubectl struct {
	t       testing.TB
	Version string
	bin     string
	home    string
	s       *Server
	Env     []string
	Stdin   string
}

// NewKubectl returns a kubectl of the given minor version ("1.32").
func (s *Server) NewKubectl(t testing.TB, version string) *Kubectl {
	t.Helper()
	bin := filepath.Join(KubectlDir, "kubectl."+version)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kubectl %s not installed at %s: %v", version, bin, err)
	}
	return &Kubectl{t: t, Version: version, bin: bin, home: t.TempDir(), s: s}
}

// With returns a copy that reports failures to t (for subtests).
func (k *Kubectl) With(t testing.TB) *Kubectl {
	c := *k
	c.t = t
	return &c
}

// Result is one kubectl run.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	Err    error
}

// Run runs kubectl with args and returns its output, whatever the exit code.
func (k *Kubectl) Run(args ...string) Result {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, args...)
	cmd.Env = append([]string{"HOME=" + k.home, "KUBECONFIG=" + k.s.Kubeconfig, "PATH=" + os.Getenv("PATH")}, k.Env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if k.Stdin != "" {
		cmd.Stdin = strings.NewReader(k.Stdin)
	}
	err := cmd.Run()
	return Result{Args: args, Stdout: out.String(), Stderr: errb.String(), Err: err}
}

// MustRun runs kubectl and fails the test if it exits non-zero.
func (k *Kubectl) MustRun(args ...string) string {
	k.t.Helper()
	r := k.Run(args...)
	if r.Err != nil {
		k.t.Fatalf("kubectl.%s %s: %v\nstdout:\n%s\nstderr:\n%s", k.Version, strings.Join(args, " "), r.Err, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Apply pipes a manifest into `kubectl apply -f -` plus extra args.
func (k *Kubectl) Apply(manifest string, args ...string) string {
	k.t.Helper()
	k.Stdin = manifest
	defer func() { k.Stdin = "" }()
	return k.MustRun(append([]string{"apply", "-f", "-"}, args...)...)
}
