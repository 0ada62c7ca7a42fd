package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestKubeletContainerFeatures runs pods that use the kubelet's container
// features on a real agent (containerd + runc, cgroups v1) and checks what
// the containers saw, mostly through their termination messages.
func TestKubeletContainerFeatures(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	cidr := fmt.Sprintf("10.%d.0.0/16", 150+(n+37)%50)
	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 8*time.Minute)
	const node = "features-e2e"
	bridge := fmt.Sprintf("skr%d", n%100000)
	a := framework.StartAgent(t, srv, node, bridge)
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	hostDir := t.TempDir()
	never := func(p *corev1.Pod) *corev1.Pod { p.Spec.RestartPolicy = corev1.RestartPolicyNever; return p }
	shared := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for i := range cs {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: "shared", MountPath: "/shared"})
			}
		}
		return p
	}
	hostLog := func(p *corev1.Pod, dir string) *corev1.Pod {
		typ := corev1.HostPathDirectoryOrCreate
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "hostlog", VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &typ}}})
		for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for i := range cs {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: "hostlog", MountPath: "/hostlog"})
			}
		}
		return p
	}
	mem := func(s string) resource.Quantity { return resource.MustParse(s) }
	grace := func(p *corev1.Pod, s int64) *corev1.Pod { p.Spec.TerminationGracePeriodSeconds = &s; return p }
	sidecarPolicy := corev1.ContainerRestartPolicyAlways
	yes, no := true, false
	uid, gid, fsGroup := int64(1234), int64(2345), int64(3456)

	pods := map[string]*corev1.Pod{}
	add := func(p *corev1.Pod) { pods[p.Name] = p }

	// Memory limit exceeded: OOMKilled, exit 137, restarted (policy Always).
	oom := framework.BusyboxPod("oom", "sh", "-c", "x=a; while true; do x=$x$x; done")
	oom.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: mem("32Mi")}
	add(oom)

	// Guaranteed with a cpu limit: the container's CFS quota, shares and OOM
	// score, and the pod cgroup's limits on the host.
	cpu := never(framework.BusyboxPod("cpu", "sh", "-c",
		"echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) shares=$(cat /sys/fs/cgroup/cpu/cpu.shares) oom=$(cat /proc/self/oom_score_adj) mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) > /dev/termination-log; sleep 4"))
	cpu.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: mem("250m"), corev1.ResourceMemory: mem("64Mi")}
	add(cpu)

	// Security context: user, group, fsGroup on an emptyDir, read-only root,
	// all capabilities dropped, no_new_privs.
	sec := shared(never(framework.BusyboxPod("sec", "sh", "-c",
		`echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) ro=$(touch /x 2>/dev/null && echo no || echo yes) vol=$(touch /shared/f && stat -c %g /shared/f) $(grep -E 'CapEff|NoNewPrivs' /proc/self/status | tr -s '\t\n' '  ')" > /dev/termination-log`)))
	sec.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &gid, FSGroup: &fsGroup}
	sec.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: &yes, AllowPrivilegeEscalation: &no,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	add(sec)

	// Added capabilities and a privileged container (its sandbox then is
	// privileged too); upstream's masked (/proc/keys a bind of /dev/null)
	// and read-only (/proc/sys mounted ro) paths, which a privileged
	// container does not get.
	const capsAndProc = `echo "$(grep CapEff /proc/self/status | cut -f2) masked=$([ -c /proc/keys ] && echo yes || echo no)` +
		` rosys=$(grep -q ' /proc/sys ro,' /proc/self/mountinfo && echo yes || echo no)" > /dev/termination-log`
	caps := never(framework.BusyboxPod("caps", "sh", "-c", capsAndProc))
	caps.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}
	caps.Spec.Containers = append(caps.Spec.Containers, corev1.Container{Name: "priv", Image: framework.BusyboxImage, ImagePullPolicy: corev1.PullNever,
		Command: []string{"sh", "-c", capsAndProc}, SecurityContext: &corev1.SecurityContext{Privileged: &yes}})
	add(caps)

	// runAsNonRoot with an image that runs as root: refused.
	nonroot := framework.BusyboxPod("nonroot", "sleep", "3600")
	nonroot.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: &yes}
	add(nonroot)

	// postStart writes a file the container waits for.
	post := shared(never(framework.BusyboxPod("poststart", "sh", "-c",
		"for i in $(seq 50); do [ -f /shared/hook ] && break; sleep 1; done; cat /shared/hook > /dev/termination-log")))
	post.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{
		Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo from-poststart > /shared/hook"}}}}
	add(post)

	// A failing postStart kills the container.
	postFail := framework.BusyboxPod("poststart-fail", "sleep", "3600")
	postFail.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{
		Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "exit 7"}}}}
	add(postFail)

	// preStop runs before SIGTERM; the sidecar stops after the container.
	stopDir := filepath.Join(hostDir, "prestop")
	pre := hostLog(grace(framework.BusyboxPod("prestop", "sh", "-c",
		"trap 'echo main-term >> /hostlog/log; exit 0' TERM; while true; do sleep 1; done"), 20), stopDir)
	pre.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
		Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo main-prestop >> /hostlog/log"}}}}
	add(pre)

	// activeDeadlineSeconds fails the pod.
	deadline := framework.BusyboxPod("deadline", "sleep", "3600")
	deadline.Spec.ActiveDeadlineSeconds = ptr(int64(3))
	add(deadline)

	// FallbackToLogsOnError: the log's tail is the message of a failure.
	fallback := never(framework.BusyboxPod("fallback", "sh", "-c", "echo first; echo oops; exit 3"))
	fallback.Spec.Containers[0].TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	add(fallback)

	// A sidecar runs beside the container; the init container after it sees
	// it started.
	sideDir := filepath.Join(hostDir, "sidecar")
	side := grace(framework.BusyboxPod("sidecar", "sh", "-c",
		"trap 'echo main-term >> /hostlog/log; exit 0' TERM; while true; do sleep 1; done"), 20)
	side.Spec.InitContainers = []corev1.Container{
		{Name: "side", Image: framework.BusyboxImage, ImagePullPolicy: corev1.PullNever, RestartPolicy: &sidecarPolicy,
			Command: []string{"sh", "-c", "trap 'echo side-term >> /hostlog/log; exit 0' TERM; echo up > /shared/side; while true; do sleep 1; done"},
			StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/shared/side"}}},
				PeriodSeconds: 1}},
		{Name: "after", Image: framework.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: []string{"cat", "/shared/side"}},
	}
	side = hostLog(shared(side), sideDir)
	add(side)

	// hostNetwork: the node's IP and network;
	// hostPID: the test process is visible.
	hostNet := never(framework.BusyboxPod("hostnet", "sh", "-c", fmt.Sprintf(
		"echo oom=$(cat /proc/self/oom_score_adj) pid=$([ -d /proc/%d ] && echo host || echo own) $(ls /sys/class/net | tr '\\n' ' ') > /dev/termination-log", os.Getpid())))
	hostNet.Spec.HostNetwork, hostNet.Spec.HostPID = true, true
	add(hostNet)

	for _, p := range pods {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", p.Name, err)
		}
	}
	created := time.Now()

	terminatedMsg := func(t *testing.T, name string) *corev1.Pod {
		return framework.WaitPod(t, cs, name, 90*time.Second, "terminated", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Terminated != nil
		})
	}

	t.Run("cpu limit and pod cgroup", func(t *testing.T) {
		p := framework.WaitPod(t, cs, "cpu", 90*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		if p.Status.QOSClass != corev1.PodQOSGuaranteed {
			t.Errorf("qosClass %q, want Guaranteed", p.Status.QOSClass)
		}
		for file, want := range map[string]string{"cpu/cpu.cfs_quota_us": "25000", "cpu/cpu.shares": "256", "memory/memory.limit_in_bytes": "67108864"} {
			b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", file[:strings.Index(file, "/")], "kubepods", "pod"+string(p.UID), file[strings.Index(file, "/")+1:]))
			if err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("pod cgroup %s = %q (%v), want %s", file, b, err, want)
			}
		}
		p = terminatedMsg(t, "cpu")
		// Without CAP_SYS_RESOURCE (as on some CI machines) containerd clamps
		// negative OOM scores to its own.
		oom := "-997"
		if !canLowerOOMScore() {
			oom = "0"
		}
		if got, want := p.Status.ContainerStatuses[0].State.Terminated.Message, "quota=25000 shares=256 oom="+oom+" mem=67108864\n"; got != want {
			t.Errorf("container saw %q, want %q", got, want)
		}
	})
	t.Run("security context", func(t *testing.T) {
		p := terminatedMsg(t, "sec")
		msg := p.Status.ContainerStatuses[0].State.Terminated.Message
		t.Logf("sec: %s", msg)
		for _, want := range []string{"uid=1234 ", "gid=2345 ", "ro=yes", "vol=3456", "CapEff: 0000000000000000", "NoNewPrivs: 1"} {
			if !strings.Contains(msg, want) {
				t.Errorf("container saw %q, want %q in it", msg, want)
			}
		}
		if !strings.Contains(msg, "groups=2345 3456") {
			t.Errorf("container saw %q, want groups 2345 3456 (fsGroup supplemental)", msg)
		}
	})
	t.Run("capabilities and privileged", func(t *testing.T) {
		p := framework.WaitPod(t, cs, "caps", 90*time.Second, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		capEff := func(i int, proc string) uint64 {
			msg := strings.TrimSpace(p.Status.ContainerStatuses[i].State.Terminated.Message)
			hex, rest, _ := strings.Cut(msg, " ")
			v, err := strconv.ParseUint(hex, 16, 64)
			if err != nil {
				t.Fatalf("container %d: message %q: %v", i, msg, err)
			}
			if rest != proc {
				t.Errorf("container %d: /proc %q, want %q", i, rest, proc)
			}
			return v
		}
		const netAdmin, sysAdmin = 1 << 12, 1 << 21
		if c := capEff(0, "masked=yes rosys=yes"); c&netAdmin == 0 || c&sysAdmin != 0 {
			t.Errorf("CapEff %x: want NET_ADMIN added and no SYS_ADMIN", c)
		}
		if c := capEff(1, "masked=no rosys=no"); c&sysAdmin == 0 {
			t.Errorf("privileged CapEff %x: want SYS_ADMIN", c)
		}
	})
	t.Run("runAsNonRoot refused", func(t *testing.T) {
		p := framework.WaitPod(t, cs, "nonroot", 60*time.Second, "CreateContainerConfigError", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
				p.Status.ContainerStatuses[0].State.Waiting.Reason == "CreateContainerConfigError"
		})
		want := fmt.Sprintf("container has runAsNonRoot and image will run as root (pod: \"nonroot_default(%s)\", container: main)", p.UID)
		if got := p.Status.ContainerStatuses[0].State.Waiting.Message; got != want {
			t.Errorf("message %q, want %q", got, want)
		}
	})
	t.Run("postStart", func(t *testing.T) {
		p := terminatedMsg(t, "poststart")
		if got := p.Status.ContainerStatuses[0].State.Terminated.Message; got != "from-poststart\n" {
			t.Errorf("container saw %q, want the postStart hook's file", got)
		}
		if p.Status.Phase != corev1.PodSucceeded {
			// The phase may follow a moment later.
			framework.WaitPod(t, cs, "poststart", 30*time.Second, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		}
	})
	t.Run("failing postStart", func(t *testing.T) {
		p := framework.WaitPod(t, cs, "poststart-fail", 90*time.Second, "killed and restarted", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].LastTerminationState.Terminated != nil
		})
		t.Logf("poststart-fail: %+v", p.Status.ContainerStatuses[0])
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "poststart-fail" && e.Reason == "FailedPostStartHook" {
				found = true
				if !strings.Contains(e.Message, "Exec lifecycle hook ([sh -c exit 7]) for Container \"main\"") {
					t.Errorf("event message %q", e.Message)
				}
			}
		}
		if !found {
			t.Errorf("no FailedPostStartHook event")
		}
	})
	t.Run("OOMKilled", func(t *testing.T) {
		p := framework.WaitPod(t, cs, "oom", 120*time.Second, "OOMKilled and restarted", func(p *corev1.Pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			s := p.Status.ContainerStatuses[0]
			return s.RestartCount >= 1 && s.LastTerminationState.Terminated != nil
		})
		last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
		if last.Reason != "OOMKilled" || last.ExitCode != 137 {
			t.Errorf("last state %+v, want OOMKilled with exit code 137", last)
		}
		if p.Status.QOSClass != corev1.PodQOSBurstable {
			t.Errorf("qosClass %q, want Burstable", p.Status.QOSClass)
		}
	})
	t.Run("activeDeadlineSeconds", func(t *testing.T) {
		p := framework.WaitPod(t, cs, "deadline", 60*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if p.Status.Reason != "DeadlineExceeded" || p.Status.Message != "Pod was active on the node longer than the specified deadline" {
			t.Errorf("reason %q message %q", p.Status.Reason, p.Status.Message)
		}
		if s := p.Status.ContainerStatuses[0]; s.State.Terminated == nil {
			t.Fatalf("container not terminated: %+v", s.State)
		}
		s := p.Status.ContainerStatuses[0]
		t.Logf("deadline: the test saw it failed %s after creating all pods; pod created %s, started %s, container started %s, finished %s",
			time.Since(created).Round(time.Millisecond), p.CreationTimestamp.Format(time.TimeOnly), p.Status.StartTime.Format(time.TimeOnly),
			s.State.Terminated.StartedAt.Format(time.TimeOnly), s.State.Terminated.FinishedAt.Format(time.TimeOnly))
	})
	t.Run("FallbackToLogsOnError", func(t *testing.T) {
		p := terminatedMsg(t, "fallback")
		if got := p.Status.ContainerStatuses[0].State.Terminated; got.Message != "first\noops\n" || got.ExitCode != 3 {
			t.Errorf("terminated %+v, want the log as message", got)
		}
	})
	t.Run("hostNetwork", func(t *testing.T) {
		p := terminatedMsg(t, "hostnet")
		if p.Status.PodIP == "" || p.Status.PodIP != p.Status.HostIP {
			t.Errorf("podIP %q, hostIP %q: want the node's", p.Status.PodIP, p.Status.HostIP)
		}
		if msg := p.Status.ContainerStatuses[0].State.Terminated.Message; !strings.Contains(msg, bridge) || !strings.HasPrefix(msg, "oom=1000 pid=host ") {
			t.Errorf("container saw %q, want the BestEffort OOM score 1000, the node's PIDs and the node's interfaces (with %s)", msg, bridge)
		}
	})
	t.Run("sidecar", func(t *testing.T) {
		p := framework.WaitPod(t, cs, "sidecar", 90*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning && framework.PodReady(p)
		})
		if len(p.Status.InitContainerStatuses) != 2 {
			t.Fatalf("init statuses %+v", p.Status.InitContainerStatuses)
		}
		s, after := p.Status.InitContainerStatuses[0], p.Status.InitContainerStatuses[1]
		if s.State.Running == nil || !s.Ready || s.Started == nil || !*s.Started {
			t.Errorf("sidecar status %+v, want running, started and ready", s)
		}
		if after.State.Terminated == nil || after.State.Terminated.ExitCode != 0 {
			t.Errorf("init container after the sidecar: %+v", after.State)
		}
	})
	t.Run("preStop and sidecar order", func(t *testing.T) {
		for _, name := range []string{"prestop", "sidecar"} {
			framework.WaitPod(t, cs, name, 60*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
			time.Sleep(time.Second) // the trap is set
			if err := cs.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for name, want := range map[string]string{stopDir: "main-prestop\nmain-term\n", sideDir: "main-term\nside-term\n"} {
			var got []byte
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if got, _ = os.ReadFile(filepath.Join(name, "log")); string(got) == want {
					break
				}
			}
			if string(got) != want {
				t.Errorf("%s: log %q, want %q", filepath.Base(name), got, want)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

// canLowerOOMScore reports whether this process has CAP_SYS_RESOURCE (bit
// 24), without which no container gets a negative OOM score.
func canLowerOOMScore() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<24) != 0
		}
	}
	return false
}
