package kubelet

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/server/statsapi"
)

// fakeCgroupFS points cgroupFS at a temporary directory and returns a
// function writing files below it.
func fakeCgroupFS(t *testing.T) func(rel, content string) {
	t.Helper()
	old := cgroupFS
	cgroupFS = t.TempDir()
	t.Cleanup(func() { cgroupFS = old })
	return func(rel, content string) {
		t.Helper()
		p := filepath.Join(cgroupFS, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNodeMemory(t *testing.T) {
	dir := t.TempDir()
	meminfo, vmstat := filepath.Join(dir, "meminfo"), filepath.Join(dir, "vmstat")
	os.WriteFile(meminfo, []byte("MemTotal:       1000 kB\nMemFree:         300 kB\nMemAvailable:    600 kB\n"+
		"Inactive(file):  200 kB\nAnonPages:       350 kB\n"), 0o644)
	os.WriteFile(vmstat, []byte("nr_free_pages 75\npgfault 42\npgmajfault 3\n"), 0o644)
	m, ok := nodeMemory(meminfo, vmstat)
	want := cgroupMem{usage: 700 * 1024, workingSet: 500 * 1024, rss: 350 * 1024, pgfault: 42, pgmajfault: 3, limit: 1000 * 1024}
	if !ok || m != want {
		t.Errorf("nodeMemory = %+v, %v; want %+v", m, ok, want)
	}
	if _, ok := nodeMemory(filepath.Join(dir, "missing"), vmstat); ok {
		t.Error("a missing meminfo reads as ok")
	}
}

func TestCgroupOf(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "v1")
	os.WriteFile(v1, []byte("9:name=systemd:/user.slice\n4:memory:/system.slice/skiff.service\n2:cpu,cpuacct:/system.slice/skiff.service\n0::/\n"), 0o644)
	v2 := filepath.Join(dir, "v2")
	os.WriteFile(v2, []byte("0::/system.slice/containerd.service\n"), 0o644)
	for _, tc := range []struct {
		path string
		v2   bool
		want procCgroup
		ok   bool
	}{
		{v1, false, procCgroup{"/system.slice/skiff.service", "/system.slice/skiff.service"}, true},
		{v2, true, procCgroup{"/system.slice/containerd.service", "/system.slice/containerd.service"}, true},
		{v2, false, procCgroup{}, false}, // no v1 hierarchy lines
		{filepath.Join(dir, "gone"), false, procCgroup{}, false},
	} {
		if got, ok := cgroupOf(tc.path, tc.v2); got != tc.want || ok != tc.ok {
			t.Errorf("cgroupOf(%s, v2=%v) = %+v, %v; want %+v, %v", filepath.Base(tc.path), tc.v2, got, ok, tc.want, tc.ok)
		}
	}
}

func TestProcessStartAndSocketPeer(t *testing.T) {
	start := processStart(os.Getpid())
	if start.IsZero() || start.After(time.Now().Add(time.Second)) || time.Since(start) > 24*time.Hour {
		t.Errorf("processStart(self) = %v", start)
	}
	if !processStart(0).IsZero() || !processStart(1<<22+1).IsZero() {
		t.Error("processStart of no process: want the zero time")
	}
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if got := socketPeerPID(sock); got != os.Getpid() {
		t.Errorf("socketPeerPID = %d, want this process %d", got, os.Getpid())
	}
	if got := socketPeerPID(filepath.Join(t.TempDir(), "none.sock")); got != 0 {
		t.Errorf("socketPeerPID of no socket = %d", got)
	}
}

func TestSystemContainers(t *testing.T) {
	write := fakeCgroupFS(t)
	write("cpuacct/kubepods/cpuacct.usage", "5000\n")
	write("memory/kubepods/memory.usage_in_bytes", "8192\n")
	write("memory/kubepods/memory.limit_in_bytes", "9223372036854771712\n")
	write("memory/kubepods/memory.stat", "total_rss 4096\n")
	k := testKubelet()
	k.cfg.RuntimeEndpoint = "unix://" + filepath.Join(t.TempDir(), "none.sock")
	s := newStatsProvider(k)
	got := s.systemContainers(time.Now())
	var pods *bool
	for _, c := range got {
		if c.Name == "runtime" {
			t.Errorf("runtime without a runtime socket: %+v", c)
		}
		if c.Name == "pods" {
			ok := c.CPU != nil && *c.CPU.UsageCoreNanoSeconds == 5000 && c.Memory != nil && *c.Memory.WorkingSetBytes == 8192 && !c.StartTime.IsZero()
			pods = &ok
		}
	}
	if pods == nil || !*pods {
		t.Errorf("system containers %+v: want pods with the kubepods cgroup's cpu and memory", got)
	}
}

func TestClaimVolumeStats(t *testing.T) {
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "blob"), make([]byte, 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}},
		{Name: "unbound", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "pending"}}},
	}}}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "cu"}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv1"},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}
	pending := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: "ns", UID: "pu"}}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"}, Spec: corev1.PersistentVolumeSpec{
		ClaimRef:               &corev1.ObjectReference{Namespace: "ns", Name: "c", UID: types.UID("cu")},
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: data}}}}
	k := testKubelet()
	client := fake.NewSimpleClientset(claim, pending, pv)
	k.cfg.Client = client
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	idx.Add(pod)
	k.podLister = corelisters.NewPodLister(idx)
	s := newStatsProvider(k)
	md := &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u1"}

	vols := s.volumeStats(context.Background(), md, time.Now())
	if len(vols) != 1 {
		t.Fatalf("volume stats %+v: want the bound claim's only", vols)
	}
	v := vols[0]
	if v.Name != "data" || v.PVCRef == nil || *v.PVCRef != (statsapi.PVCReference{Name: "c", Namespace: "ns"}) || v.ephemeral ||
		v.UsedBytes == nil || *v.UsedBytes < 100000 || v.CapacityBytes == nil {
		t.Errorf("claim volume stats %+v (pvcRef %+v): want pvcRef ns/c, >= 100000 bytes used, not ephemeral", v, v.PVCRef)
	}
	// Looked up once: the next scrape asks the API server nothing.
	before := len(client.Actions())
	s.volumeStats(context.Background(), md, time.Now())
	if n := len(client.Actions()) - before; n != 1 { // only the unbound claim again
		t.Errorf("second scrape made %d API calls, want 1 (the unbound claim's)", n)
	}
	s.forgetClaims(map[string]bool{})
	if len(s.claims) != 0 {
		t.Errorf("claims of gone pods kept: %v", s.claims)
	}
}

// The volumes kept on a tmpfs (Config.VolatileDir) take memory: they are in
// the volume stats but not in the pod's ephemeral storage; an emptyDir on
// the node's disk is.
func TestVolatileVolumeStatsNotEphemeral(t *testing.T) {
	const shm = "/dev/shm"
	if !onTmpfs(shm) {
		t.Skip(shm + " is not a tmpfs here")
	}
	volatile, err := os.MkdirTemp(shm, "skiff-stats-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(volatile) })
	k := testKubelet()
	k.cfg.DataDir = t.TempDir()
	if onTmpfs(k.cfg.DataDir) {
		t.Skip("the test's temporary dir is on a tmpfs")
	}
	k.cfg.VolatileDir = volatile
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}}}
	for _, v := range pod.Spec.Volumes {
		dir := k.volumeDir("u1", volumePluginDir(&v), v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 5000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(k.volumeDir("u1", volumePluginDir(&pod.Spec.Volumes[0]), "cfg"), volatile) {
		t.Fatalf("config map volume not in the volatile dir: %s", k.volumeDir("u1", volumePluginDir(&pod.Spec.Volumes[0]), "cfg"))
	}
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	idx.Add(pod)
	k.podLister = corelisters.NewPodLister(idx)
	s := newStatsProvider(k)
	vols := s.volumeStats(context.Background(), &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u1"}, time.Now())
	got := map[string]bool{}
	for _, v := range vols {
		if v.UsedBytes == nil || *v.UsedBytes < 5000 {
			t.Errorf("volume %s: used bytes %v, want >= 5000", v.Name, v.UsedBytes)
		}
		got[v.Name] = v.ephemeral
	}
	if want := map[string]bool{"cfg": false, "scratch": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("ephemeral by volume %v, want %v", got, want)
	}
}
