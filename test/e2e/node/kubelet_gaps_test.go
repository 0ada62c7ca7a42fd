package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/kubelet/server/statsapi"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestKubeletGaps covers the kubelet API's stats (/stats/summary and
// /metrics/resource through the API server's nodes/proxy), `kubectl logs
// --previous`, memory-backed emptyDirs and the QoS-level cgroups, on one
// server and one agent.
func TestKubeletGaps(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 20+(n+37)%80))
	cs := srv.Client()
	ctx := framework.Context(t, 8*time.Minute)
	const node = "kubelet-gaps-e2e"
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("skf%d", n%100000))
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"greeting": strings.Repeat("hello ", 1000)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// stats: Burstable (cpu request below its limit), a little cpu work
	// every second, an emptyDir with a file and a configMap volume.
	stats := framework.BusyboxPod("stats", "sh", "-c", "echo started; head -c 1000000 /dev/zero > /data/blob; "+
		"while true; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 1; done")
	stats.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("300m")},
	}
	mount(stats, "data", "/data", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})
	mount(stats, "cfg", "/cfg", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}})
	// restarts: prints "run 1" and fails, then "run 2" and stays up (the
	// emptyDir outlives the container).
	restarts := framework.BusyboxPod("restarts", "sh", "-c",
		`if [ -f /state/ran ]; then echo "run 2"; exec sleep 3600; fi; touch /state/ran; echo "run 1"; exit 1`)
	mount(restarts, "state", "/state", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})
	// tmpfs: two memory-backed emptyDirs, one with a sizeLimit, one sized
	// by the pod's memory limit; Guaranteed.
	tmpfs := framework.BusyboxPod("tmpfs", "sleep", "3600")
	tmpfs.Spec.Containers[0].Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}}
	limit := resource.MustParse("16Mi")
	mount(tmpfs, "small", "/small", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &limit}})
	mount(tmpfs, "podsized", "/podsized", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}})
	// besteffort: no requests or limits.
	besteffort := framework.BusyboxPod("besteffort", "sleep", "3600")
	for _, p := range []*corev1.Pod{stats, restarts, tmpfs, besteffort} {
		p.Spec.NodeName = node
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", p.Name, err)
		}
	}
	for _, name := range []string{"stats", "tmpfs", "besteffort"} {
		framework.WaitPod(t, cs, name, 2*time.Minute, "ready", framework.PodReady)
	}
	k := srv.NewKubectl(t, framework.DefaultKubectl)

	t.Run("StatsSummary", func(t *testing.T) {
		s1 := summary(ctx, t, cs, node)
		p1, c1 := podStats(t, s1, "stats")
		checkNodeStats(t, s1)
		if c1.Name != "main" || c1.StartTime.IsZero() || p1.StartTime.IsZero() || p1.PodRef.UID == "" {
			t.Errorf("pod %+v, container %+v: want names, UID and start times", p1.PodRef, c1)
		}
		if c1.Memory == nil || c1.Memory.WorkingSetBytes == nil || *c1.Memory.WorkingSetBytes == 0 {
			t.Errorf("container memory %s: want a working set > 0", js(c1.Memory))
		}
		if p1.Memory == nil || p1.Memory.WorkingSetBytes == nil || *p1.Memory.WorkingSetBytes == 0 {
			t.Errorf("pod memory %s: want a working set > 0", js(p1.Memory))
		}
		if c1.CPU == nil || c1.CPU.UsageCoreNanoSeconds == nil || p1.CPU == nil || p1.CPU.UsageCoreNanoSeconds == nil {
			t.Fatalf("cpu: container %s, pod %s", js(c1.CPU), js(p1.CPU))
		}
		if c1.Rootfs == nil || c1.Rootfs.UsedBytes == nil || c1.Rootfs.CapacityBytes == nil || *c1.Rootfs.CapacityBytes == 0 {
			t.Errorf("container rootfs %s", js(c1.Rootfs))
		}
		if c1.Logs == nil || c1.Logs.UsedBytes == nil || *c1.Logs.UsedBytes == 0 {
			t.Errorf("container logs %s: want the log's bytes", js(c1.Logs))
		}
		if nw := p1.Network; nw == nil || nw.Name != "eth0" || deref(nw.RxBytes) == 0 {
			t.Errorf("pod network %s: want eth0's counters", js(nw))
		}
		vols := map[string]statsapi.VolumeStats{}
		for _, v := range p1.VolumeStats {
			vols[v.Name] = v
		}
		if v, ok := vols["data"]; !ok || v.UsedBytes == nil || *v.UsedBytes < 1000000 || v.CapacityBytes == nil {
			t.Errorf("emptyDir volume stats %s: want >= 1000000 bytes used (the blob)", js(v))
		}
		if v, ok := vols["cfg"]; !ok || v.UsedBytes == nil || *v.UsedBytes < 6000 {
			t.Errorf("configMap volume stats %s: want >= 6000 bytes used", js(v))
		}
		if e := p1.EphemeralStorage; e == nil || e.UsedBytes == nil || *e.UsedBytes < 1000000 || e.CapacityBytes == nil {
			t.Errorf("ephemeral-storage %s: want at least the emptyDir's blob", js(e))
		}

		time.Sleep(3 * time.Second)
		start := time.Now()
		s2 := summary(ctx, t, cs, node)
		took := time.Since(start)
		p2, c2 := podStats(t, s2, "stats")
		if c2.CPU == nil || c2.CPU.UsageCoreNanoSeconds == nil || *c2.CPU.UsageCoreNanoSeconds <= *c1.CPU.UsageCoreNanoSeconds {
			t.Errorf("container cpu did not grow: %s then %s", js(c1.CPU), js(c2.CPU))
		}
		if p2.CPU == nil || p2.CPU.UsageCoreNanoSeconds == nil || *p2.CPU.UsageCoreNanoSeconds <= *p1.CPU.UsageCoreNanoSeconds {
			t.Errorf("pod cpu did not grow: %s then %s", js(p1.CPU), js(p2.CPU))
		}
		if p2.CPU != nil && (p2.CPU.UsageNanoCores == nil || *p2.CPU.UsageNanoCores == 0) {
			t.Errorf("pod cpu %s: want a usageNanoCores rate on the second scrape", js(p2.CPU))
		}
		if s2.Node.CPU == nil || s2.Node.CPU.UsageNanoCores == nil {
			t.Errorf("node cpu %s: want a rate on the second scrape", js(s2.Node.CPU))
		}
		t.Logf("GET stats/summary through nodes/proxy with %d pods took %v", len(s2.Pods), took.Round(time.Millisecond))
		t.Logf("pod stats: cpu %d ns (%d nanocores), memory working set %d B; node cpu %d nanocores, working set %d B",
			*p2.CPU.UsageCoreNanoSeconds, deref(p2.CPU.UsageNanoCores), deref(p2.Memory.WorkingSetBytes),
			deref(s2.Node.CPU.UsageNanoCores), deref(s2.Node.Memory.WorkingSetBytes))

		// only_cpu_and_memory leaves out file systems; a bad value is a 400.
		b, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy/stats/summary").
			Param("only_cpu_and_memory", "true").DoRaw(ctx)
		var s3 statsapi.Summary
		if err != nil || json.Unmarshal(b, &s3) != nil || s3.Node.Fs != nil || s3.Node.CPU == nil {
			t.Errorf("only_cpu_and_memory: %v: %.300s", err, b)
		}
		// The kubelet's answer passes through as it is, as kube-apiserver's
		// node proxy does.
		b, err = cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy/stats/summary").
			Param("only_cpu_and_memory", "maybe").DoRaw(ctx)
		if !apierrors.IsBadRequest(err) || !strings.Contains(string(b), "only_cpu_and_memory") {
			t.Errorf("only_cpu_and_memory=maybe: %v: %s, want a 400 naming the parameter", err, b)
		}
		b, err = cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", "no-such-node", "proxy/stats/summary").DoRaw(ctx)
		if !apierrors.IsNotFound(err) || !strings.Contains(string(b), `nodes \"no-such-node\" not found`) {
			t.Errorf("proxy to a missing node: %#v: %s, want NotFound", err, b)
		}
		deadline := time.Now().Add(30 * time.Second)
		for s := s2; deref(s.Node.Runtime.ImageFs.UsedBytes) == 0; s = summary(ctx, t, cs, node) {
			if time.Now().After(deadline) {
				t.Errorf("imageFs used bytes still 0 after 30 s: %s", js(s.Node.Runtime))
				break
			}
			time.Sleep(time.Second)
		}
		// Real kubectl, as an operator would look.
		raw := k.With(t).MustRun("get", "--raw", "/api/v1/nodes/"+node+"/proxy/stats/summary")
		if !strings.Contains(raw, `"nodeName": "`+node+`"`) || !strings.Contains(raw, `"workingSetBytes"`) {
			t.Errorf("kubectl get --raw stats/summary: %.400s", raw)
		}
	})

	t.Run("MetricsResource", func(t *testing.T) {
		b, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy/metrics/resource").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, want := range []string{
			"# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total ",
			"# TYPE node_memory_working_set_bytes gauge\nnode_memory_working_set_bytes ",
			`container_cpu_usage_seconds_total{container="main",namespace="default",pod="stats"} `,
			`container_memory_working_set_bytes{container="main",namespace="default",pod="stats"} `,
			`container_start_time_seconds{container="main",namespace="default",pod="stats"} `,
			`pod_cpu_usage_seconds_total{namespace="default",pod="stats"} `,
			`pod_memory_working_set_bytes{namespace="default",pod="stats"} `,
			"\nresource_scrape_error 0\n",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics/resource lacks %q:\n%s", want, text)
			}
		}
	})

	t.Run("LogsPrevious", func(t *testing.T) {
		k := k.With(t)
		framework.WaitPod(t, cs, "restarts", 2*time.Minute, "restarted and ready", func(p *corev1.Pod) bool {
			return framework.PodReady(p) && p.Status.ContainerStatuses[0].RestartCount >= 1
		})
		if got := k.MustRun("logs", "restarts"); got != "run 2\n" {
			t.Errorf("kubectl logs: %q, want the current run's %q", got, "run 2\n")
		}
		if got := k.MustRun("logs", "restarts", "--previous"); got != "run 1\n" {
			t.Errorf("kubectl logs --previous: %q, want the old run's %q", got, "run 1\n")
		}
		r := k.Run("logs", "besteffort", "--previous")
		if r.Err == nil || !strings.Contains(r.Stderr, `previous terminated container "main" in pod "besteffort" not found`) {
			t.Errorf("kubectl logs --previous without a previous run: %v: %s", r.Err, r.Stderr)
		}
	})

	t.Run("EmptyDirMemory", func(t *testing.T) {
		k := k.With(t)
		mounts := k.MustRun("exec", "tmpfs", "--", "cat", "/proc/mounts")
		want := map[string]string{"/small": "size=16384k", "/podsized": "size=65536k"}
		for path, size := range want {
			var line string
			for _, l := range strings.Split(mounts, "\n") {
				if f := strings.Fields(l); len(f) > 3 && f[1] == path {
					line = l
				}
			}
			if !strings.HasPrefix(line, "tmpfs ") || !strings.Contains(line, size) {
				t.Errorf("mount of %s in the container: %q, want a tmpfs with %s", path, line, size)
			}
		}
		p, err := cs.CoreV1().Pods("default").Get(ctx, "tmpfs", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(a.DataDir, "agent", "pods", string(p.UID))
		if !strings.Contains(readFile(t, "/proc/self/mountinfo"), dir) {
			t.Errorf("no mount under %s on the host while the pod runs", dir)
		}
		if err := cs.CoreV1().Pods("default").Delete(ctx, "tmpfs", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(90 * time.Second)
		for {
			_, err := cs.CoreV1().Pods("default").Get(ctx, "tmpfs", metav1.GetOptions{})
			left := strings.Contains(readFile(t, "/proc/self/mountinfo"), dir)
			if err != nil && !left {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod gone: %v; tmpfs left under %s: %v", err != nil, dir, left)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("QOSCgroups", func(t *testing.T) {
		k := k.With(t)
		for name, want := range map[string]string{
			"besteffort": "/kubepods/besteffort/pod",
			"stats":      "/kubepods/burstable/pod",
			"restarts":   "/kubepods/besteffort/pod",
		} {
			p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cg := memoryCgroup(k.MustRun("exec", name, "--", "cat", "/proc/self/cgroup"))
			if !strings.HasPrefix(cg, want+string(p.UID)+"/") {
				t.Errorf("%s (%s): memory cgroup %q, want under %s%s", name, p.Status.QOSClass, cg, want, p.UID)
			}
		}
		// A Guaranteed pod sits directly under kubepods.
		g := framework.BusyboxPod("guaranteed", "sleep", "3600")
		g.Spec.NodeName = node
		g.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("32Mi")}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, g, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := framework.WaitPod(t, cs, "guaranteed", 2*time.Minute, "ready", framework.PodReady)
		if cg := memoryCgroup(k.MustRun("exec", "guaranteed", "--", "cat", "/proc/self/cgroup")); !strings.HasPrefix(cg, "/kubepods/pod"+string(p.UID)+"/") {
			t.Errorf("guaranteed (%s): memory cgroup %q, want under /kubepods/pod%s", p.Status.QOSClass, cg, p.UID)
		}
		if got := strings.TrimSpace(readFile(t, "/sys/fs/cgroup/cpu/kubepods/besteffort/cpu.shares")); got != "2" {
			t.Errorf("besteffort cpu.shares %s, want 2", got)
		}
		// The burstable level is shared by every agent on this machine:
		// its shares are at least this test's Burstable pod's (100m).
		var shares int
		fmt.Sscan(readFile(t, "/sys/fs/cgroup/cpu/kubepods/burstable/cpu.shares"), &shares)
		if shares < 102 {
			t.Errorf("burstable cpu.shares %d, want >= 102 (the stats pod's request)", shares)
		}
	})
}

// mount adds a volume to p and mounts it in its first container.
func mount(p *corev1.Pod, name, path string, src corev1.VolumeSource) {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: src})
	c := &p.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: path})
}

func summary(ctx context.Context, t *testing.T, cs kubernetes.Interface, node string) *statsapi.Summary {
	t.Helper()
	b, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy/stats/summary").DoRaw(ctx)
	if err != nil {
		t.Fatalf("GET nodes/%s/proxy/stats/summary: %v: %s", node, err, b)
	}
	var s statsapi.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("decode summary: %v: %.500s", err, b)
	}
	return &s
}

func podStats(t *testing.T, s *statsapi.Summary, name string) (statsapi.PodStats, statsapi.ContainerStats) {
	t.Helper()
	for _, p := range s.Pods {
		if p.PodRef.Name == name && p.PodRef.Namespace == "default" {
			if len(p.Containers) != 1 {
				t.Fatalf("pod %s: containers %s, want 1", name, js(p.Containers))
			}
			return p, p.Containers[0]
		}
	}
	t.Fatalf("pod %s not in the summary: %s", name, js(s.Pods))
	return statsapi.PodStats{}, statsapi.ContainerStats{}
}

func checkNodeStats(t *testing.T, s *statsapi.Summary) {
	t.Helper()
	n := s.Node
	if n.StartTime.IsZero() || n.CPU == nil || n.CPU.UsageCoreNanoSeconds == nil || *n.CPU.UsageCoreNanoSeconds == 0 {
		t.Errorf("node cpu %s, start %v", js(n.CPU), n.StartTime)
	}
	if m := n.Memory; m == nil || m.WorkingSetBytes == nil || *m.WorkingSetBytes == 0 || m.UsageBytes == nil ||
		m.RSSBytes == nil || m.AvailableBytes == nil || *m.AvailableBytes == 0 {
		t.Errorf("node memory %s: want usage, working set, rss and available", js(m))
	}
	if f := n.Fs; f == nil || f.CapacityBytes == nil || *f.CapacityBytes == 0 || f.AvailableBytes == nil || f.UsedBytes == nil {
		t.Errorf("node fs %s", js(f))
	}
	// containerd counts the images' bytes every 10 s: used may be 0 yet.
	if n.Runtime == nil || n.Runtime.ImageFs == nil || n.Runtime.ImageFs.CapacityBytes == nil || n.Runtime.ImageFs.UsedBytes == nil {
		t.Errorf("node imageFs %s: want capacity and used bytes", js(n.Runtime))
	}
	if r := n.Rlimit; r == nil || r.MaxPID == nil || *r.MaxPID == 0 || r.NumOfRunningProcesses == nil || *r.NumOfRunningProcesses == 0 {
		t.Errorf("node rlimit %s", js(r))
	}
	// The pods' common cgroup is a system container; "kubelet" and
	// "runtime" depend on where the agent runs (none in a root cgroup).
	var pods *statsapi.ContainerStats
	for i, c := range n.SystemContainers {
		if c.Name == "pods" {
			pods = &n.SystemContainers[i]
		}
	}
	if pods == nil || pods.CPU == nil || deref(pods.CPU.UsageCoreNanoSeconds) == 0 || pods.Memory == nil ||
		deref(pods.Memory.WorkingSetBytes) == 0 || pods.StartTime.IsZero() {
		t.Errorf("system containers %s: want pods with cpu, memory and a start time", js(n.SystemContainers))
	}
}

// memoryCgroup is the memory hierarchy's path in a /proc/self/cgroup.
func memoryCgroup(procCgroup string) string {
	for _, l := range strings.Split(procCgroup, "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[1] == "memory" {
			return f[2]
		}
	}
	return ""
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
