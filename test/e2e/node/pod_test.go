package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/cri"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// testNetwork is a CNI network of one test: its own bridge and /24, so runs
// side by side do not share addresses; host-local keeps its leases in the
// data dir.
type testNetwork struct {
	bridge string
	subnet netip.Prefix
	ipam   string
}

// writeCNIConfig writes a bridge + host-local network into the agent's
// CNI conf_dir. containerd's CRI plugin adds the loopback itself.
func writeCNIConfig(t *testing.T, dataDir string) testNetwork {
	t.Helper()
	n := os.Getpid()
	nw := testNetwork{
		bridge: fmt.Sprintf("skt%d", n%100000),
		subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 200+n%50, (n/50)%250)),
		ipam:   filepath.Join(dataDir, "agent", "cni", "ipam"),
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "skiff-test",
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      nw.bridge,
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": nw.subnet.String()}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": nw.ipam,
			},
		}},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	dir := filepath.Join(dataDir, "agent", "cni", "net.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-skiff.conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", nw.bridge).Run() })
	return nw
}

// pod is a sandbox and its container, started through CRI.
type pod struct {
	cfg       *runtimeapi.PodSandboxConfig
	sandbox   string
	container string
}

func sandboxConfig(name, logDir string) *runtimeapi.PodSandboxConfig {
	uid := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join(logDir, uid),
		Labels:       map[string]string{"io.kubernetes.pod.name": name},
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

// startPod runs a sandbox and a busybox container in it running command.
func startPod(ctx context.Context, c *cri.Client, name, logDir string, command ...string) (*pod, error) {
	p := &pod{cfg: sandboxConfig(name, logDir)}
	if err := os.MkdirAll(p.cfg.LogDirectory, 0o755); err != nil {
		return nil, err
	}
	var err error
	if p.sandbox, err = c.RunPodSandbox(ctx, p.cfg, ""); err != nil {
		return nil, err
	}
	p.container, err = c.CreateContainer(ctx, p.sandbox, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
		Image:    &runtimeapi.ImageSpec{Image: framework.BusyboxImage},
		Command:  command,
		LogPath:  "main/0.log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}, p.cfg)
	if err != nil {
		return p, err
	}
	return p, c.StartContainer(ctx, p.container)
}

// remove stops and removes the pod's container and sandbox.
func (p *pod) remove(ctx context.Context, c *cri.Client, grace int64) error {
	if p.container != "" {
		if err := c.StopContainer(ctx, p.container, grace); err != nil {
			return err
		}
		if err := c.RemoveContainer(ctx, p.container); err != nil {
			return err
		}
	}
	if err := c.StopPodSandbox(ctx, p.sandbox); err != nil {
		return err
	}
	return c.RemovePodSandbox(ctx, p.sandbox)
}

// netnsPath digs the sandbox's network namespace out of containerd's
// verbose status (the OCI spec it ran the pause container with).
func netnsPath(t *testing.T, st *runtimeapi.PodSandboxStatusResponse) string {
	t.Helper()
	var info struct {
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string }
			}
		}
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil {
		t.Fatalf("sandbox status info: %v", err)
	}
	for _, ns := range info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			return ns.Path
		}
	}
	return ""
}

// mountsUnder lists the mount points under dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPodThroughCRI(t *testing.T) {
	framework.RequireRoot(t)
	dir := newDataDir(t)
	nw := writeCNIConfig(t, dir)
	rt := framework.StartRuntime(t, dir, nil)
	c := rt.CRI
	ctx := context.Background()
	logDir := filepath.Join(dir, "pods")

	p, err := startPod(ctx, c, "hello", logDir, "sh", "-c", "echo hello; sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.ContainerStatus(ctx, p.container, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container state %s, want RUNNING", st.State)
	}
	sb, err := c.PodSandboxStatus(ctx, p.sandbox, true)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox state %s, want READY", sb.Status.State)
	}
	ip, err := netip.ParseAddr(sb.Status.GetNetwork().GetIp())
	if err != nil || !nw.subnet.Contains(ip) {
		t.Errorf("sandbox IP %q (%v), want one in %s", sb.Status.GetNetwork().GetIp(), err, nw.subnet)
	}
	netns := netnsPath(t, sb)
	if netns == "" {
		t.Error("no network namespace in the sandbox's spec")
	}
	t.Logf("sandbox %s: IP %s, netns %s", p.sandbox[:12], ip, netns)
	logFile := filepath.Join(p.cfg.LogDirectory, "main", "0.log")
	eventually(t, 5*time.Second, "hello in the container log", func() error {
		b, err := os.ReadFile(logFile)
		if err == nil && !strings.Contains(string(b), " stdout F hello\n") {
			err = fmt.Errorf("log is %q", b)
		}
		return err
	})

	// sh as PID 1 ignores SIGTERM: the stop ends with SIGKILL after 1 s.
	if err := p.remove(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	sandboxes, err := c.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	containers, err := c.ListContainers(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sandboxes) != 0 || len(containers) != 0 {
		t.Errorf("after removal: %d sandboxes, %d containers remain", len(sandboxes), len(containers))
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Errorf("mounts remain under the data dir: %v", m)
	}
	if _, err := os.Stat(netns); !os.IsNotExist(err) {
		t.Errorf("network namespace %s remains (%v)", netns, err)
	}
	leases, _ := filepath.Glob(filepath.Join(nw.ipam, "*", "*.*.*.*"))
	if len(leases) != 0 {
		t.Errorf("IP leases remain: %v", leases)
	}
}

func TestPodStartLatency(t *testing.T) {
	framework.RequireRoot(t)
	dir := newDataDir(t)
	writeCNIConfig(t, dir)
	rt := framework.StartRuntime(t, dir, nil)
	ctx := context.Background()
	var took []time.Duration
	for i := range 5 {
		start := time.Now()
		p, err := startPod(ctx, rt.CRI, fmt.Sprintf("latency-%d", i), filepath.Join(dir, "pods"), "sleep", "30")
		d := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		took = append(took, d)
		if err := p.remove(ctx, rt.CRI, 0); err != nil {
			t.Fatal(err)
		}
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	t.Logf("sandbox + container start (RunPodSandbox with CNI, CreateContainer, StartContainer): median %s of %v",
		sorted[len(sorted)/2].Round(time.Millisecond), took)
}

func TestContainerdCrash(t *testing.T) {
	framework.RequireRoot(t)
	dir := newDataDir(t)
	writeCNIConfig(t, dir)
	rt := framework.StartRuntime(t, dir, nil)
	ctx := context.Background()
	p, err := startPod(ctx, rt.CRI, "survivor", filepath.Join(dir, "pods"), "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	old := rt.Pid()
	killed := time.Now()
	if err := exec.Command("kill", "-9", fmt.Sprint(old)).Run(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a new containerd answering CRI", func() error {
		if pid := rt.Pid(); pid == 0 || pid == old {
			return fmt.Errorf("pid %d", pid)
		}
		_, err := rt.CRI.Version(ctx)
		return err
	})
	t.Logf("containerd %d killed; %d answers CRI after %s", old, rt.Pid(), time.Since(killed).Round(time.Millisecond))
	// The container lived on in its shim and the new containerd knows it.
	st, err := rt.CRI.ContainerStatus(ctx, p.container, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container state after the restart %s, want RUNNING", st.State)
	}
	if err := p.remove(ctx, rt.CRI, 0); err != nil {
		t.Fatal(err)
	}
}

// TestSideBySide runs two containerds with different data dirs at once.
func TestSideBySide(t *testing.T) {
	framework.RequireRoot(t)
	a := framework.StartRuntime(t, t.TempDir(), nil)
	b := framework.StartRuntime(t, t.TempDir(), nil)
	if a.Pid() == b.Pid() || a.Endpoint() == b.Endpoint() {
		t.Fatalf("one containerd for two data dirs: pid %d, %s", a.Pid(), a.Endpoint())
	}
	for _, rt := range []*framework.Runtime{a, b} {
		if _, err := rt.CRI.Version(context.Background()); err != nil {
			t.Error(err)
		}
	}
	a.Stop()
	if _, err := b.CRI.Version(context.Background()); err != nil {
		t.Errorf("second containerd after the first stopped: %v", err)
	}
}
