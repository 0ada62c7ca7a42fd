package node

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// agentProc is one `skiff agent` subprocess.
type agentProc struct {
	t       *testing.T
	args    []string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	logs    strings.Builder
	dataDir string
}

func (a *agentProc) write(s string) {
	a.mu.Lock()
	a.logs.WriteString(s)
	a.mu.Unlock()
}

func (a *agentProc) Logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

type agentLog struct{ a *agentProc }

func (w agentLog) Write(p []byte) (int, error) { w.a.write(string(p)); return len(p), nil }

// start runs the agent and waits for its ready line.
func (a *agentProc) start() {
	t := a.t
	t.Helper()
	cmd := exec.Command(framework.Binary(t), a.args...)
	cmd.Stderr = agentLog{a}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
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

// stop sends SIGTERM and waits for a clean exit.
func (a *agentProc) stop() {
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

// startAgent runs `skiff agent` against srv on a fresh data dir with its
// own bridge, and removes every sandbox it left at the end.
func startAgent(t *testing.T, srv *framework.Server, node, bridge string) *agentProc {
	t.Helper()
	dir := t.TempDir()
	a := &agentProc{t: t, dataDir: dir, args: []string{"agent", "--server", srv.URL(), "--kubeconfig", srv.Kubeconfig,
		"--data-dir", dir, "--node-name", node, "--cni-bridge", bridge, "--kubelet-port", strconv.Itoa(framework.FreePort(t))}}
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	t.Cleanup(a.stop)
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
		a.stop()
		rt := framework.StartRuntime(t, dir, func(c *containerd.Config) { c.Prepare = nil })
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
				dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods/pod" + uid)
				for _, d := range dirs {
					os.Remove(d)
				}
			}
		}
		rt.Stop()
	})
	a.start()
	return a
}

func busyboxPod(name string, command ...string) *corev1.Pod {
	grace := int64(2)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "main", Image: framework.BusyboxImage,
				ImagePullPolicy: corev1.PullNever, Command: command}},
		},
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitPod polls a pod until cond holds.
func waitPod(t *testing.T, cs kubernetes.Interface, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
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

func TestKubeletRunsPods(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	// Own pod network per run, so concurrent runs on this machine do not
	// hand out the same addresses.
	cidr := fmt.Sprintf("10.%d.0.0/16", 100+n%100)
	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	const node = "kubelet-e2e"
	a := startAgent(t, srv, node, fmt.Sprintf("skk%d", n%100000))

	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.dataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}

	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nd.Spec.PodCIDR == "" || !nodeReady(nd) {
		t.Fatalf("node %s: podCIDR %q, conditions %+v", node, nd.Spec.PodCIDR, nd.Status.Conditions)
	}
	podCIDR := netip.MustParsePrefix(nd.Spec.PodCIDR)
	info := nd.Status.NodeInfo
	t.Logf("node %s: podCIDR %s, capacity %v, runtime %s, kubelet %s, kernel %s, os %s", node, podCIDR,
		nd.Status.Capacity, info.ContainerRuntimeVersion, info.KubeletVersion, info.KernelVersion, info.OSImage)
	if !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://") || nd.Status.Capacity.Pods().Value() != 110 ||
		nd.Status.Capacity.Memory().IsZero() || nd.Status.Capacity.StorageEphemeral().IsZero() {
		t.Errorf("node status incomplete: %+v", nd.Status)
	}
	if _, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{}); err != nil {
		t.Errorf("node lease: %v", err)
	}

	// A pod with a web server in a second container: Running, Ready, an IP
	// from the node's podCIDR that the host reaches.
	web := busyboxPod("web", "sh", "-c", "echo hi; sleep 3600")
	web.Spec.InitContainers = []corev1.Container{{Name: "init", Image: framework.BusyboxImage, ImagePullPolicy: corev1.PullNever,
		Command: []string{"sh", "-c", "echo init"}}}
	web.Spec.Containers = append(web.Spec.Containers, corev1.Container{Name: "httpd", Image: framework.BusyboxImage,
		ImagePullPolicy: corev1.PullNever, Command: []string{"httpd", "-f", "-p", "8080"}, WorkingDir: "/tmp",
		Env: []corev1.EnvVar{{Name: "GREETING", Value: "hi"}}})
	if _, err := cs.CoreV1().Pods("default").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, cs, "web", 60*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podReady(p)
	})
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !podCIDR.Contains(ip) {
		t.Fatalf("pod IP %q not in podCIDR %s", p.Status.PodIP, podCIDR)
	}
	if p.Status.HostIP == "" || p.Status.StartTime == nil || len(p.Status.ContainerStatuses) != 2 {
		t.Errorf("pod status incomplete: %+v", p.Status)
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil || !strings.HasPrefix(c.ContainerID, "containerd://") || c.ImageID == "" || !c.Ready {
			t.Errorf("container %s: %+v", c.Name, c)
		}
	}
	if ics := p.Status.InitContainerStatuses; len(ics) != 1 || ics[0].State.Terminated == nil || ics[0].State.Terminated.Reason != "Completed" {
		t.Errorf("init container status: %+v", ics)
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
		if !slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == typ && c.Status == corev1.ConditionTrue }) {
			t.Errorf("condition %s not True: %+v", typ, p.Status.Conditions)
		}
	}
	cgroup := "/sys/fs/cgroup/memory/kubepods/pod" + string(p.UID)
	if _, err := os.Stat(cgroup); err != nil {
		t.Errorf("pod cgroup: %v", err)
	}
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if conn, err = net.DialTimeout("tcp", net.JoinHostPort(p.Status.PodIP, "8080"), time.Second); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("connect to httpd in the pod at %s:8080: %v", p.Status.PodIP, err)
	} else {
		conn.Close()
	}

	// Restart policy Never and exit 3: Failed, exit code 3, reason Error.
	fail := busyboxPod("fail", "sh", "-c", "exit 3")
	fail.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := cs.CoreV1().Pods("default").Create(ctx, fail, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, cs, "fail", 60*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("failed pod's container: %+v", p.Status.ContainerStatuses[0].State)
	}

	// restartPolicy OnFailure restarts a failing container.
	crash := busyboxPod("crash", "sh", "-c", "exit 1")
	crash.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	if _, err := cs.CoreV1().Pods("default").Create(ctx, crash, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The first back-off is 10 s.
	p = waitPod(t, cs, "crash", 30*time.Second, "restarted", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	if w := p.Status.ContainerStatuses[0].State.Waiting; p.Status.Phase != corev1.PodRunning || (w != nil && w.Reason != "CrashLoopBackOff") {
		t.Errorf("crashing pod: phase %s, %+v", p.Status.Phase, p.Status.ContainerStatuses[0])
	}

	// A missing image is reported, not retried forever silently.
	missing := busyboxPod("missing")
	missing.Spec.Containers[0].Image = "skiff.sh/test/no-such-image:1"
	if _, err := cs.CoreV1().Pods("default").Create(ctx, missing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, cs, "missing", 30*time.Second, "waiting on its image", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "ErrImageNeverPull"
	})
	t.Logf("missing image: %s", p.Status.ContainerStatuses[0].State.Waiting.Message)

	// create → Running latency, image present.
	var lat []time.Duration
	for i := range 5 {
		name := fmt.Sprintf("lat-%d", i)
		start := time.Now()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, busyboxPod(name, "sleep", "3600"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPod(t, cs, name, 30*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && podReady(p) })
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("create → Running and Ready (5 pods, one at a time): median %v, min %v, max %v",
		lat[2].Round(time.Millisecond), lat[0].Round(time.Millisecond), lat[4].Round(time.Millisecond))

	// Restarting the agent adopts running containers: same container, no restart.
	before, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.stop()
	a.start()
	time.Sleep(3 * time.Second) // a relist or two
	after, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range after.Status.ContainerStatuses {
		b, c := before.Status.ContainerStatuses[i], after.Status.ContainerStatuses[i]
		if c.ContainerID != b.ContainerID || c.RestartCount != 0 || c.State.Running == nil {
			t.Errorf("container %s after agent restart: %+v (before %s)", c.Name, c, b.ContainerID)
		}
	}
	if after.Status.PodIP != before.Status.PodIP {
		t.Errorf("pod IP changed over agent restart: %s → %s", before.Status.PodIP, after.Status.PodIP)
	}

	// Deleting the running pod: gone within its grace period (2 s), no
	// sandbox left.
	uid := string(before.UID)
	start := time.Now()
	if err := cs.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Since(start) > 2*time.Second+3*time.Second {
			t.Fatalf("pod web still there %v after delete (grace 2s)", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("pod web deleted after %v (grace period 2s)", time.Since(start).Round(time.Millisecond))

	// A container that ignores SIGTERM is killed when the grace period ends.
	stubborn := busyboxPod("stubborn", "sh", "-c", "trap '' TERM; sleep 3600")
	if _, err := cs.CoreV1().Pods("default").Create(ctx, stubborn, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, "stubborn", 30*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	start = time.Now()
	if err := cs.CoreV1().Pods("default").Delete(ctx, "stubborn", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "stubborn", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Since(start) > 2*time.Second+3*time.Second {
			t.Fatalf("pod stubborn still there %v after delete (grace 2s)", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("pod ignoring SIGTERM gone after %v, before its 2s grace period", d)
	} else {
		t.Logf("pod ignoring SIGTERM deleted after %v (grace period 2s)", d.Round(time.Millisecond))
	}

	c, err := cri.Dial(containerd.Socket(a.dataDir), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sbs, err := c.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sbs) != 0 {
		t.Errorf("%d sandboxes of the deleted pod remain", len(sbs))
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/kubepods/pod" + uid); !os.IsNotExist(err) {
		t.Errorf("cgroup of the deleted pod: %v, want it gone", err)
	}
}

func nodeReady(nd *corev1.Node) bool {
	for _, c := range nd.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
