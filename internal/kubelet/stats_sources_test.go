package kubelet

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCgroupReaders reads the same pods from a cgroup v1 tree and a v2
// one: u1 Burstable with 7000 bytes of working set (usage 10000 less 3000
// inactive file pages) and no memory limit, u2 Guaranteed with more
// inactive file pages than usage and a 64 KiB limit.
func TestCgroupReaders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"v1", map[string]string{
			"cpuacct/kubepods/burstable/podu1/cpuacct.usage":        "2500000\n",
			"memory/kubepods/burstable/podu1/memory.usage_in_bytes": "10000\n",
			"memory/kubepods/burstable/podu1/memory.limit_in_bytes": "9223372036854771712\n",
			"memory/kubepods/burstable/podu1/memory.stat":           "cache 1\ntotal_rss 6000\ntotal_inactive_file 3000\ntotal_pgfault 7\ntotal_pgmajfault 1\n",
			"cpuacct/kubepods/podu2/cpuacct.usage":                  "1\n",
			"memory/kubepods/podu2/memory.usage_in_bytes":           "10000\n",
			"memory/kubepods/podu2/memory.limit_in_bytes":           "65536\n",
			"memory/kubepods/podu2/memory.stat":                     "total_inactive_file 20000\n",
		}},
		{"v2", map[string]string{
			"cgroup.controllers":                      "cpuset cpu io memory pids\n",
			"kubepods/burstable/podu1/cgroup.procs":   "",
			"kubepods/burstable/podu1/cpu.stat":       "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
			"kubepods/burstable/podu1/memory.current": "10000\n",
			"kubepods/burstable/podu1/memory.max":     "max\n",
			"kubepods/burstable/podu1/memory.stat":    "anon 6000\nfile 4000\ninactive_file 3000\npgfault 7\npgmajfault 1\n",
			"kubepods/podu2/cgroup.procs":             "",
			"kubepods/podu2/memory.current":           "10000\n",
			"kubepods/podu2/memory.max":               "65536\n",
			"kubepods/podu2/memory.stat":              "inactive_file 20000\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write := fakeCgroupFS(t)
			for rel, content := range tc.files {
				write(rel, content)
			}
			if got := cgroupV2(); got != (tc.name == "v2") {
				t.Fatalf("cgroupV2() = %v", got)
			}
			for uid, want := range map[string]string{"u1": "/kubepods/burstable/podu1", "u2": "/kubepods/podu2", "nope": ""} {
				if got := findPodCgroup(uid); got != want {
					t.Errorf("findPodCgroup(%s) = %q, want %q", uid, got, want)
				}
			}
			if v, ok := cgroupCPU("/kubepods/burstable/podu1"); !ok || v != 2500000 {
				t.Errorf("cpu = %d ns, %v; want 2500000", v, ok)
			}
			m, ok := cgroupMemory("/kubepods/burstable/podu1")
			if !ok || m.usage != 10000 || m.workingSet != 7000 || m.rss != 6000 || m.pgfault != 7 || m.pgmajfault != 1 {
				t.Errorf("memory = %+v, %v", m, ok)
			}
			if ms := memoryStats(m, time.Now()); ms.AvailableBytes != nil || *ms.WorkingSetBytes != 7000 {
				t.Errorf("unlimited cgroup: available %v, working set %d", ms.AvailableBytes, *ms.WorkingSetBytes)
			}
			// More inactive file pages than usage: the working set is 0, not
			// a wrapped-around huge number.
			m, _ = cgroupMemory("/kubepods/podu2")
			if ms := memoryStats(m, time.Now()); *ms.WorkingSetBytes != 0 || ms.AvailableBytes == nil || *ms.AvailableBytes != 65536 {
				t.Errorf("limited cgroup: %+v", ms)
			}
			if _, ok := cgroupMemory("/kubepods/missing"); ok {
				t.Error("a missing cgroup reads as ok")
			}
			if _, ok := cgroupCPU("/kubepods/missing"); ok {
				t.Error("a missing cgroup's cpu reads as ok")
			}
		})
	}
}

func TestCPURates(t *testing.T) {
	r := newCPURates()
	t0 := time.Unix(1000, 0)
	if _, ok := r.observe("c", 1e9, t0); ok {
		t.Error("a rate from a single sample")
	}
	// Half a core over 500 ms: the window is kept (shorter than a second).
	if v, ok := r.observe("c", 1.25e9, t0.Add(500*time.Millisecond)); !ok || v != 5e8 {
		t.Errorf("rate = %d, %v; want 5e8", v, ok)
	}
	// One core over the 2 s since the first sample.
	if v, ok := r.observe("c", 3e9, t0.Add(2*time.Second)); !ok || v != 1e9 {
		t.Errorf("rate = %d, %v; want 1e9", v, ok)
	}
	// A counter that went back (a new container with the same key) restarts.
	if _, ok := r.observe("c", 10, t0.Add(3*time.Second)); ok {
		t.Error("a rate across a counter reset")
	}
	r.forget(t0.Add(3*time.Second + forgetAfter + time.Second))
	if len(r.samples) != 0 {
		t.Errorf("samples not forgotten: %v", r.samples)
	}
}

func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), make([]byte, 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	bytes, inodes, err := diskUsage(dir)
	// The directory, a (counted once), the symlink; /usr is not followed.
	if err != nil || inodes != 3 || bytes < 100000 || bytes > 200000 {
		t.Errorf("diskUsage = %d bytes, %d inodes, %v", bytes, inodes, err)
	}
	fs := dirFs(dir, time.Now())
	if fs == nil || *fs.UsedBytes != bytes || *fs.CapacityBytes == 0 {
		t.Errorf("dirFs = %+v", fs)
	}
	if dirFs(filepath.Join(dir, "missing"), time.Now()) != nil {
		t.Error("dirFs of a missing directory")
	}
}

func TestNetworkStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev")
	dev := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0: 5000      40    2    0    0     0          0         0     7000      50    3    0    0     0       0          0
`
	if err := os.WriteFile(path, []byte(dev), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := networkStats(path, "eth0", time.Now())
	if ns == nil || len(ns.Interfaces) != 1 || ns.Name != "eth0" || *ns.RxBytes != 5000 || *ns.RxErrors != 2 || *ns.TxBytes != 7000 || *ns.TxErrors != 3 {
		t.Errorf("networkStats = %+v", ns)
	}
	if networkStats(filepath.Join(t.TempDir(), "missing"), "eth0", time.Now()) != nil {
		t.Error("stats of a missing file")
	}
}
