package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// agentFlagsNet gives each test of this file a pod network and bridge of
// its own (salt), apart from concurrent runs and other tests.
func agentFlagsNet(salt int) (cidr, bridge string) {
	n := os.Getpid()
	return fmt.Sprintf("10.%d.0.0/16", 150+(n*3+salt)%50), fmt.Sprintf("saf%d%d", n%100000, salt)
}

// TestAgentBadNodeFlags: a bad label or taint ends `skiff agent` at once
// with exit code 1 and a message naming it, not a crash.
func TestAgentBadNodeFlags(t *testing.T) {
	for _, tt := range []struct{ flag, value, want string }{
		{"--node-label", "node-role.kubernetes.io/worker=true", "unknown 'kubernetes.io' or 'k8s.io' labels node-role.kubernetes.io/worker"},
		{"--node-label", "a=b,c", `--node-label "c": want key=value`},
		{"--node-taint", "dedicated=gpu:Sometimes", `--node-taint dedicated: effect "Sometimes"`},
		{"--container-runtime-endpoint", "tcp://127.0.0.1:1", "only unix:// sockets"},
	} {
		for _, cmd := range []string{"agent", "server"} {
			c := exec.Command(framework.Binary(t), cmd, "--data-dir", t.TempDir(), tt.flag, tt.value)
			out, err := c.CombinedOutput()
			if code := c.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), tt.want) {
				t.Errorf("skiff %s %s %s: exit code %d (%v), output %q; want 1 and %q", cmd, tt.flag, tt.value, code, err, out, tt.want)
			}
		}
	}
}

// TestAgentNodeLabelsAndTaints: --node-label and --node-taint are
// registered with the Node; a restart with other labels re-applies them
// (K3s) and leaves the taints; the scheduler keeps a pod without the
// toleration Pending with upstream's message and runs one with it.
func TestAgentNodeLabelsAndTaints(t *testing.T) {
	framework.RequireRoot(t)
	cidr, bridge := agentFlagsNet(1)
	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	const node = "agentflags-taints"

	a := framework.StartAgent(t, srv, node, bridge,
		"--node-label", "example.com/pool=a,example.com/disk=ssd", "--node-label", "node.kubernetes.io/tier=web",
		"--node-taint", "dedicated=e2e:NoSchedule", "--node-taint", "example.com/soft:PreferNoSchedule")
	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"example.com/pool": "a", "example.com/disk": "ssd", "node.kubernetes.io/tier": "web", corev1.LabelHostname: node} {
		if nd.Labels[k] != v {
			t.Errorf("node label %s=%q, want %q (labels %v)", k, nd.Labels[k], v, nd.Labels)
		}
	}
	wantTaints := []corev1.Taint{{Key: "dedicated", Value: "e2e", Effect: corev1.TaintEffectNoSchedule},
		{Key: "example.com/soft", Effect: corev1.TaintEffectPreferNoSchedule}}
	if !sameTaints(nd.Spec.Taints, wantTaints) {
		t.Errorf("node taints %v, want %v", nd.Spec.Taints, wantTaints)
	}

	// A restart with a changed label value, a new label, one dropped and
	// other taints: labels given are re-applied, the dropped one stays
	// (K3s merges), taints stay as registered (upstream registers them
	// only with a new Node).
	a.Stop()
	a2 := framework.StartAgent(t, srv, node, bridge,
		"--node-label", "example.com/pool=b", "--node-label", "example.com/zone=z1", "--node-taint", "other=x:NoExecute")
	nd, err = cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"example.com/pool": "b", "example.com/zone": "z1", "example.com/disk": "ssd", "node.kubernetes.io/tier": "web"} {
		if nd.Labels[k] != v {
			t.Errorf("after restart: node label %s=%q, want %q (labels %v)", k, nd.Labels[k], v, nd.Labels)
		}
	}
	if !sameTaints(nd.Spec.Taints, wantTaints) {
		t.Errorf("after restart: node taints %v, want the registered %v", nd.Spec.Taints, wantTaints)
	}

	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a2.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, framework.BusyboxPod("untolerated", "sleep", "3600"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tolerated := framework.BusyboxPod("tolerated", "sleep", "3600")
	tolerated.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "e2e", Effect: corev1.TaintEffectNoSchedule}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, tolerated, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const wantMsg = "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: e2e}."
	p := framework.WaitPod(t, cs, "untolerated", 60*time.Second, "Unschedulable", func(p *corev1.Pod) bool {
		return slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
			return c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable
		})
	})
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && !strings.HasPrefix(c.Message, wantMsg) {
			t.Errorf("PodScheduled message %q, want it to start with %q", c.Message, wantMsg)
		}
	}
	framework.WaitPod(t, cs, "tolerated", 90*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	sel := fields.Set{"involvedObject.name": "untolerated", "reason": "FailedScheduling"}.AsSelector().String()
	var msgs []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && len(msgs) == 0; time.Sleep(200 * time.Millisecond) {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			msgs = append(msgs, e.Message)
		}
	}
	if !slices.ContainsFunc(msgs, func(m string) bool { return strings.HasPrefix(m, wantMsg) }) {
		t.Errorf("FailedScheduling events %q, want one starting with %q", msgs, wantMsg)
	}
	if p, err := cs.CoreV1().Pods("default").Get(ctx, "untolerated", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "" {
		t.Errorf("untolerated pod: node %q, err %v; want it unscheduled", p.Spec.NodeName, err)
	}
}

func sameTaints(got, want []corev1.Taint) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g corev1.Taint) bool { return g.Key == w.Key && g.Value == w.Value && g.Effect == w.Effect }) {
			return false
		}
	}
	return true
}

// TestAgentExternalRuntime: with --container-runtime-endpoint the agent
// starts no containerd of its own: the kubelet runs a pod through a
// containerd the test started (its images imported by the agent from
// <data-dir>/agent/images), writes the pod network's config to
// --cni-conf-dir, and leaves that containerd and the pod's containers
// running when it stops.
func TestAgentExternalRuntime(t *testing.T) {
	framework.RequireRoot(t)
	cidr, bridge := agentFlagsNet(2)
	// The agent's data dir. The test's first TempDir: its removal runs
	// last, after the sandbox clean-up below, whose CNI teardown writes into
	// it (host-local's dataDir) and would leave it behind.
	dataDir := t.TempDir()
	rt, cniDir := externalRuntime(t)
	endpoint := rt.Endpoint()
	// Runs after the agent's clean-up and before the runtime stops: the
	// pods' sandboxes are the runtime's, the agent's clean-up does not see them.
	t.Cleanup(func() {
		ctx := framework.Context(t, time.Minute)
		sbs, _ := rt.CRI.ListPodSandbox(ctx, nil)
		for _, sb := range sbs {
			rt.CRI.StopPodSandbox(ctx, sb.Id)
			if err := rt.CRI.RemovePodSandbox(ctx, sb.Id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			if uid := sb.Labels["io.kubernetes.pod.uid"]; uid != "" {
				dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods/*/pod" + uid)
				for _, d := range dirs {
					os.Remove(d)
				}
			}
		}
	})

	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	const node = "agentflags-external"
	// Busybox queued for the start-up import.
	if err := os.MkdirAll(images.Dir(dataDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", framework.BusyboxTarball(t), filepath.Join(images.Dir(dataDir), "busybox.tar")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	begin := time.Now()
	a := framework.StartAgent(t, srv, node, bridge, "--data-dir", dataDir,
		"--container-runtime-endpoint", endpoint, "--cni-conf-dir", cniDir)
	t.Logf("agent with an external runtime ready after %v", time.Since(begin).Round(time.Millisecond))

	if _, err := os.Stat(containerd.Socket(dataDir)); err == nil {
		t.Errorf("the agent started a containerd of its own at %s", containerd.Socket(dataDir))
	}
	if logs := a.Logs(); !strings.Contains(logs, "imported images") || !strings.Contains(logs, "external container runtime answers") {
		t.Errorf("agent log lacks the external runtime's start-up import")
	}
	if _, err := os.Stat(filepath.Join(cniDir, "10-skiff.conflist")); err != nil {
		t.Errorf("pod network config in --cni-conf-dir: %v", err)
	}
	if matches, _ := filepath.Glob(cniDir + "-nohostport/*"); len(matches) > 0 {
		t.Errorf("a no-hostport network config %v for a runtime handler the external runtime does not have", matches)
	}
	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(nd.Status.NodeInfo.ContainerRuntimeVersion, "containerd://") || !nodeReady(nd) {
		t.Errorf("node: runtime %q, conditions %+v", nd.Status.NodeInfo.ContainerRuntimeVersion, nd.Status.Conditions)
	}

	if _, err := cs.CoreV1().Pods("default").Create(ctx, framework.BusyboxPod("ext", "sleep", "3600"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := framework.WaitPod(t, cs, "ext", 90*time.Second, "Running with an IP", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != ""
	})
	t.Logf("pod ext: IP %s, container %s", p.Status.PodIP, p.Status.ContainerStatuses[0].ContainerID)
	sbs, err := rt.CRI.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sandbox string
	for _, sb := range sbs {
		if sb.Labels["io.kubernetes.pod.uid"] == string(p.UID) {
			sandbox = sb.Id
			if sb.RuntimeHandler != "" {
				t.Errorf("sandbox runtime handler %q, want the runtime's default", sb.RuntimeHandler)
			}
			for k := range sb.Annotations {
				if strings.HasPrefix(k, "io.containerd.runc.v2.group") || strings.HasPrefix(k, "skiff.sh/shim") {
					t.Errorf("sandbox annotation %s: shim groups are for the agent's own containerd", k)
				}
			}
		}
	}
	if sandbox == "" {
		t.Fatalf("the external runtime has no sandbox of pod %s: %v", p.UID, sbs)
	}

	// The agent does not own the runtime: stopping it leaves containerd
	// and the pod's container running.
	a.Stop()
	if pid := rt.Pid(); pid == 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("external containerd (pid %d) not running after the agent stopped", pid)
	}
	ctrs, err := rt.CRI.ListContainers(ctx, nil)
	if err != nil {
		t.Fatalf("external runtime after the agent stopped: %v", err)
	}
	running := false
	for _, c := range ctrs {
		if c.PodSandboxId == sandbox && c.State.String() == "CONTAINER_RUNNING" {
			running = true
		}
	}
	if !running {
		t.Errorf("the pod's container is not running in the external runtime after the agent stopped: %v", ctrs)
	}
}

// TestServerAgentNodeFlags: `skiff server` passes --node-label,
// --node-taint, --container-runtime-endpoint and --cni-conf-dir to its
// in-process agent.
func TestServerAgentNodeFlags(t *testing.T) {
	framework.RequireRoot(t)
	cidr, bridge := agentFlagsNet(3)
	dropServerAgentNet(t, bridge)
	rt, cniDir := externalRuntime(t)
	srv := framework.StartServer(t, "--disable-agent=false", "--pod-bridge", bridge, "--cluster-cidr", cidr,
		"--node-label", "example.com/role=server", "--node-taint", "example.com/cp=true:NoSchedule",
		"--container-runtime-endpoint", rt.Endpoint(), "--cni-conf-dir", cniDir)
	cs := srv.Client()
	ctx := framework.Context(t, 3*time.Minute)
	host, _ := os.Hostname()
	var nd *corev1.Node
	var err error
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		nd, err = cs.CoreV1().Nodes().Get(ctx, host, metav1.GetOptions{})
		if err == nil && nd.Spec.PodCIDR != "" && nodeReady(nd) && !notReadyTaint(nd) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not Ready (and untainted) with a podCIDR: %v %+v\n%s", host, err, nd, srv.Logs())
		}
	}
	if nd.Labels["example.com/role"] != "server" || !sameTaints(nd.Spec.Taints, []corev1.Taint{{Key: "example.com/cp", Value: "true", Effect: corev1.TaintEffectNoSchedule}}) {
		t.Errorf("node labels %v, taints %v", nd.Labels, nd.Spec.Taints)
	}
	if _, err := os.Stat(containerd.Socket(srv.DataDir)); err == nil {
		t.Errorf("the server's agent started a containerd of its own")
	}
	// The node is Ready only once the runtime has loaded its network config.
	if _, err := os.Stat(filepath.Join(cniDir, "10-skiff.conflist")); err != nil {
		t.Errorf("pod network config in --cni-conf-dir: %v", err)
	}
}

// externalRuntime starts the "external" runtime of a test: a containerd of
// the test's own, with the pause image its config names, and its CNI
// configs in a directory of their own, which it returns too.
func externalRuntime(t *testing.T) (*framework.Runtime, string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "saf-ext-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cniDir := filepath.Join(dir, "net.d")
	return framework.StartRuntime(t, dir, func(c *containerd.Config) { c.CNIConfDir = cniDir }), cniDir
}
