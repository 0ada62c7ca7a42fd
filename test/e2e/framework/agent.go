package framework

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
)

// Agent is one `skiff agent` subprocess; DataDir is its data directory.
type Agent struct {
	t       *testing.T
	args    []string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	logs    strings.Builder
	DataDir string
	netns   string // network namespace of a simulated host ("" is this one)
}

func (a *Agent) write(s string) {
	a.mu.Lock()
	a.logs.WriteString(s)
	a.mu.Unlock()
}

func (a *Agent) Logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

type agentLog struct{ a *Agent }

func (w agentLog) Write(p []byte) (int, error) { w.a.write(string(p)); return len(p), nil }

// Start runs the agent and waits for its ready line.
func (a *Agent) Start() {
	t := a.t
	t.Helper()
	cmd := exec.Command(Binary(t), a.args...)
	if a.netns != "" {
		// nsenter switches only the network namespace (ip netns exec
		// would also remount /sys and hide the cgroup hierarchies).
		cmd = exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + a.netns, "--", Binary(t)}, a.args...)...)
	}
	cmd.Stderr = agentLog{a}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := StartProcess(cmd); err != nil {
		t.Fatal(err)
	}
	a.cmd, a.done = cmd, make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			a.write(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "skiff agent is ready") {
				close(ready)
			}
		}
	}()
	done := a.done
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-ready:
		t.Logf("skiff agent ready after %v", time.Since(begin).Round(time.Millisecond))
	case <-done:
		t.Fatalf("skiff agent exited before ready: %v\n%s", cmd.ProcessState, a.Logs())
	case <-time.After(3 * time.Minute):
		t.Fatalf("skiff agent not ready within 3m\n%s", a.Logs())
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (a *Agent) Stop() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		if code := a.cmd.ProcessState.ExitCode(); code != 0 {
			a.t.Errorf("skiff agent exited with %d after SIGTERM\n%s", code, a.Logs())
		}
	case <-time.After(40 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
		a.t.Errorf("skiff agent did not stop within 40s of SIGTERM")
	}
	a.cmd = nil
}

// StartAgent runs `skiff agent` against srv on a fresh data dir with its
// own bridge, and removes every sandbox it left at the end.
func StartAgent(t *testing.T, srv *Server, node, bridge string, extra ...string) *Agent {
	t.Helper()
	return startAgent(t, srv, "", srv.URL(), node, bridge, extra...)
}

// StartAgentInNetns is StartAgent for a simulated host: the agent runs in
// the network namespace netns (made with `ip netns add`) and reaches the
// server at serverURL, an address of the server's host that netns routes
// to.
func StartAgentInNetns(t *testing.T, srv *Server, netns, serverURL, node, bridge string, extra ...string) *Agent {
	t.Helper()
	return startAgent(t, srv, netns, serverURL, node, bridge, extra...)
}

func startAgent(t *testing.T, srv *Server, netns, serverURL, node, bridge string, extra ...string) *Agent {
	t.Helper()
	dir := t.TempDir()
	a := &Agent{t: t, DataDir: dir, netns: netns, args: []string{"agent", "--server", serverURL,
		"--data-dir", dir, "--node-name", node, "--cni-bridge", bridge, "--kubelet-port", strconv.Itoa(FreePort(t))}}
	// An agent given --token joins instead of using the admin kubeconfig.
	if !slices.Contains(extra, "--token") {
		a.args = append(a.args, "--kubeconfig", srv.Kubeconfig)
	}
	a.args = append(a.args, extra...)
	if !slices.Contains(extra, "--proxy-table") {
		// Proxies of concurrent tests would share the default table and
		// their servers' ClusterIPs overlap: only tests that ask get one.
		a.args = append(a.args, "--disable-proxy")
	}
	netpolTable := "skiff-np-" + bridge
	if i := slices.Index(extra, "--netpol-table"); i >= 0 && i+1 < len(extra) {
		netpolTable = extra[i+1]
	} else {
		// Concurrent agents would rebuild one default table in turn.
		a.args = append(a.args, "--netpol-table", netpolTable)
	}
	t.Cleanup(func() {
		if netns != "" {
			return // the bridge and tables go with the namespace
		}
		exec.Command("ip", "link", "del", bridge).Run()
		// The agent's pod egress masquerade table (internal/agent/masq.go).
		exec.Command("nft", "delete", "table", "ip", "skiff-masq-"+bridge).Run()
		exec.Command("nft", "delete", "table", "inet", netpolTable).Run()
	})
	t.Cleanup(a.Stop)
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("agent log:\n%s", a.Logs())
		}
		// Containers outlive the agent: delete the pods and let the kubelet
		// remove them; then, with the agent stopped (so no kubelet starts
		// them again), remove what is left through a bare containerd.
		if a.cmd != nil {
			ctx := context.Background()
			zero := int64(0)
			srv.Client().CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
			if c, err := cri.Dial(containerd.Socket(dir), 10*time.Second); err == nil {
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					if sbs, err := c.ListPodSandbox(ctx, nil); err == nil && len(sbs) == 0 {
						break
					}
				}
				c.Close()
			}
		}
		a.Stop()
		rt := StartRuntime(t, dir, func(c *containerd.Config) { c.Prepare = nil })
		ctx := context.Background()
		sbs, _ := rt.CRI.ListPodSandbox(ctx, nil)
		for _, sb := range sbs {
			if err := rt.CRI.StopPodSandbox(ctx, sb.Id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			if err := rt.CRI.RemovePodSandbox(ctx, sb.Id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			if uid := sb.Labels["io.kubernetes.pod.uid"]; uid != "" {
				// Guaranteed pods' cgroups are in kubepods/, the others' in
				// kubepods/burstable/ or kubepods/besteffort/.
				dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods/pod" + uid)
				qos, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods/*/pod" + uid)
				dirs = append(dirs, qos...)
				for _, d := range dirs {
					os.Remove(d)
				}
			}
		}
		rt.Stop()
		// The agent's containerd state is a tmpfs: the data dir goes after.
		if err := containerd.UnmountState(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	a.Start()
	return a
}

// BusyboxPod is a pod in default running the busybox image with command.
func BusyboxPod(name string, command ...string) *corev1.Pod {
	grace := int64(2)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "main", Image: BusyboxImage,
				ImagePullPolicy: corev1.PullNever, Command: command}},
		},
	}
}

// PodReady reports the pod's Ready condition.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// WaitPod polls a pod until cond holds.
func WaitPod(t *testing.T, cs kubernetes.Interface, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			last = p
			if cond(p) {
				return p
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("pod %s not %s within %s: phase %s, status %+v", name, what, timeout, last.Status.Phase, last.Status.ContainerStatuses)
	}
	t.Fatalf("pod %s not %s within %s", name, what, timeout)
	return nil
}
