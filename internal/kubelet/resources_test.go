package kubelet

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func rl(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func TestContainerResources(t *testing.T) {
	const gi = 1 << 30
	for _, tc := range []struct {
		name string
		qos  corev1.PodQOSClass
		res  corev1.ResourceRequirements
		want *runtimeapi.LinuxContainerResources
	}{
		{"best effort", corev1.PodQOSBestEffort, corev1.ResourceRequirements{},
			&runtimeapi.LinuxContainerResources{CpuShares: 2, OomScoreAdj: 1000}},
		{"guaranteed", corev1.PodQOSGuaranteed,
			corev1.ResourceRequirements{Requests: rl("cpu", "250m", "memory", "64Mi"), Limits: rl("cpu", "250m", "memory", "64Mi")},
			&runtimeapi.LinuxContainerResources{CpuShares: 256, CpuPeriod: 100000, CpuQuota: 25000, MemoryLimitInBytes: 64 << 20, OomScoreAdj: -997}},
		{"burstable, a quarter of memory requested", corev1.PodQOSBurstable,
			corev1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "4Gi")},
			&runtimeapi.LinuxContainerResources{CpuShares: 1024, OomScoreAdj: 750}},
		{"burstable, limit only: the limit is the request", corev1.PodQOSBurstable,
			corev1.ResourceRequirements{Limits: rl("cpu", "2")},
			&runtimeapi.LinuxContainerResources{CpuShares: 2048, CpuPeriod: 100000, CpuQuota: 200000, OomScoreAdj: 999}},
		{"burstable, all memory requested", corev1.PodQOSBurstable,
			corev1.ResourceRequirements{Requests: rl("memory", "16Gi")},
			&runtimeapi.LinuxContainerResources{CpuShares: 2, OomScoreAdj: 3}},
		{"tiny cpu limit: the kernel's minimum quota", corev1.PodQOSBurstable,
			corev1.ResourceRequirements{Requests: rl("cpu", "1m"), Limits: rl("cpu", "1m")},
			&runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000, CpuQuota: 1000, OomScoreAdj: 999}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &corev1.Container{Resources: tc.res}
			if got := containerResources(tc.qos, c, 16*gi); !proto.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestComputeQOS(t *testing.T) {
	c := func(req, lim corev1.ResourceList) corev1.Container {
		return corev1.Container{Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	for _, tc := range []struct {
		name string
		cs   []corev1.Container
		want corev1.PodQOSClass
	}{
		{"nothing", []corev1.Container{{}}, corev1.PodQOSBestEffort},
		{"equal limits", []corev1.Container{c(rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"))}, corev1.PodQOSGuaranteed},
		{"limits only", []corev1.Container{c(nil, rl("cpu", "1", "memory", "1Gi"))}, corev1.PodQOSGuaranteed},
		{"cpu only", []corev1.Container{c(nil, rl("cpu", "1"))}, corev1.PodQOSBurstable},
		{"request below limit", []corev1.Container{c(rl("cpu", "500m", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"))}, corev1.PodQOSBurstable},
		{"one container without", []corev1.Container{c(rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi")), {}}, corev1.PodQOSBurstable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := computeQOS(&corev1.PodSpec{Containers: tc.cs}); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPodCgroupValues(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	g := func(cpu, mem string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: rl("cpu", cpu, "memory", mem), Limits: rl("cpu", cpu, "memory", mem)}
	}
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want map[string]string
	}{
		{"best effort", corev1.PodSpec{Containers: []corev1.Container{{}}}, map[string]string{"cpu/cpu.shares": "2"}},
		{"guaranteed: sums", corev1.PodSpec{Containers: []corev1.Container{{Resources: g("250m", "64Mi")}, {Resources: g("750m", "64Mi")}}},
			map[string]string{"cpu/cpu.shares": "1024", "cpu/cpu.cfs_period_us": "100000", "cpu/cpu.cfs_quota_us": "100000", "memory/memory.limit_in_bytes": "134217728"}},
		{"burstable without all limits: shares only", corev1.PodSpec{Containers: []corev1.Container{{Resources: g("500m", "64Mi")}, {}}},
			map[string]string{"cpu/cpu.shares": "512"}},
		{"a big init container wins", corev1.PodSpec{InitContainers: []corev1.Container{{Resources: g("2", "1Gi")}},
			Containers: []corev1.Container{{Resources: g("250m", "64Mi")}}},
			map[string]string{"cpu/cpu.shares": "2048", "cpu/cpu.cfs_period_us": "100000", "cpu/cpu.cfs_quota_us": "200000", "memory/memory.limit_in_bytes": "1073741824"}},
		{"sidecars add to the containers", corev1.PodSpec{InitContainers: []corev1.Container{{Resources: g("500m", "64Mi"), RestartPolicy: &always}},
			Containers: []corev1.Container{{Resources: g("500m", "64Mi")}}},
			map[string]string{"cpu/cpu.shares": "1024", "cpu/cpu.cfs_period_us": "100000", "cpu/cpu.cfs_quota_us": "100000", "memory/memory.limit_in_bytes": "134217728"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := podCgroupValues(&corev1.Pod{Spec: tc.spec})
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestSetupPodCgroup(t *testing.T) {
	old := cgroupFS
	cgroupFS = t.TempDir()
	t.Cleanup(func() { cgroupFS = old })
	for _, c := range []string{"cpu", "memory"} {
		if err := os.MkdirAll(filepath.Join(cgroupFS, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &corev1.Pod{}
	p.UID = "u1"
	p.Spec.Containers = []corev1.Container{{Resources: corev1.ResourceRequirements{Limits: rl("cpu", "100m", "memory", "32Mi")}}}
	if err := setupPodCgroup(p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cgroupFS, "memory", "kubepods", "podu1", "memory.limit_in_bytes"))
	if err != nil || string(b) != "33554432" {
		t.Errorf("memory limit %q, %v", b, err)
	}
	b, err = os.ReadFile(filepath.Join(cgroupFS, "cpu", "kubepods", "podu1", "cpu.cfs_quota_us"))
	if err != nil || string(b) != "10000" {
		t.Errorf("cpu quota %q, %v", b, err)
	}
}

func TestQOSCgroups(t *testing.T) {
	old := cgroupFS
	cgroupFS = t.TempDir()
	t.Cleanup(func() { cgroupFS = old })
	for _, c := range []string{"cpu", "memory"} {
		if err := os.MkdirAll(filepath.Join(cgroupFS, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(uid string, r corev1.ResourceRequirements) *corev1.Pod {
		p := &corev1.Pod{}
		p.UID = types.UID(uid)
		p.Spec.Containers = []corev1.Container{{Resources: r}}
		return p
	}
	for _, tc := range []struct {
		pod    *corev1.Pod
		parent string
	}{
		{pod("g", corev1.ResourceRequirements{Limits: rl("cpu", "100m", "memory", "32Mi")}), "kubepods/podg"},
		{pod("b1", corev1.ResourceRequirements{Requests: rl("cpu", "250m")}), "kubepods/burstable/podb1"},
		{pod("b2", corev1.ResourceRequirements{Requests: rl("cpu", "500m")}), "kubepods/burstable/podb2"},
		{pod("e", corev1.ResourceRequirements{}), "kubepods/besteffort/pode"},
	} {
		if got := podCgroupOf(tc.pod); got != "/"+tc.parent {
			t.Errorf("podCgroupOf(%s) = %s, want /%s", tc.pod.UID, got, tc.parent)
		}
		if err := setupPodCgroup(tc.pod); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(cgroupFS, "cpu", tc.parent, "cpu.shares")); err != nil {
			t.Errorf("pod %s: %v", tc.pod.UID, err)
		}
	}
	shares := func(dir string) string {
		b, _ := os.ReadFile(filepath.Join(cgroupFS, "cpu", dir, "cpu.shares"))
		return string(b)
	}
	if got := shares("kubepods/besteffort"); got != "2" {
		t.Errorf("besteffort cpu.shares = %q, want 2", got)
	}
	// 250m + 500m requested: 256 + 512 shares.
	if got := shares("kubepods/burstable"); got != "768" {
		t.Errorf("burstable cpu.shares = %q, want 768", got)
	}
	// The tempdir is no cgroupfs: files keep the directory non-empty.
	for _, f := range []string{"cpu.shares"} {
		os.Remove(filepath.Join(cgroupFS, "cpu", "kubepods/burstable/podb2", f))
	}
	removePodCgroup("b2")
	if got := shares("kubepods/burstable"); got != "256" {
		t.Errorf("burstable cpu.shares after removal = %q, want 256", got)
	}
}
