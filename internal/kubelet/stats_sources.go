package kubelet

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-sh/skiff/internal/kubelet/server/statsapi"
)

// The readers of stats.go: cgroup files (v1 cpuacct and memory, or the v2
// unified hierarchy's cpu.stat and memory.*), /proc and statfs. Each
// returns ok=false when its source is missing, so a figure is left out
// rather than reported as zero.

// cgroupV2 reports whether cgroupFS is a cgroup v2 (unified) mount, which
// has cgroup.controllers at its root; a v1 or hybrid host has a tmpfs
// with one directory per hierarchy there.
func cgroupV2() bool {
	_, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers"))
	return err == nil
}

// cgroupCPU is the cumulative cpu time (ns) of a cgroup directory
// ("" or "/" is the root: the whole node).
func cgroupCPU(dir string) (uint64, bool) {
	if cgroupV2() {
		usec, ok := readKeyed(filepath.Join(cgroupFS, dir, "cpu.stat"))["usage_usec"]
		return usec * 1000, ok
	}
	return readUint(filepath.Join(cgroupFS, "cpuacct", dir, "cpuacct.usage"))
}

// cgroupMemory is the memory usage of a cgroup directory as cadvisor
// reports it: working set = usage - inactive file pages.
type cgroupMem struct {
	usage, workingSet, rss, pgfault, pgmajfault, limit uint64
}

func cgroupMemory(dir string) (cgroupMem, bool) {
	if cgroupV2() {
		return cgroupMemoryV2(filepath.Join(cgroupFS, dir))
	}
	d := filepath.Join(cgroupFS, "memory", dir)
	var m cgroupMem
	var ok bool
	if m.usage, ok = readUint(filepath.Join(d, "memory.usage_in_bytes")); !ok {
		return m, false
	}
	m.limit, _ = readUint(filepath.Join(d, "memory.limit_in_bytes"))
	st := readKeyed(filepath.Join(d, "memory.stat"))
	m.rss = st["total_rss"]
	m.pgfault, m.pgmajfault = st["total_pgfault"], st["total_pgmajfault"]
	m.setWorkingSet(st["total_inactive_file"])
	return m, true
}

// cgroupMemoryV2 reads a v2 cgroup: memory.current, memory.max ("max" is
// no limit) and memory.stat, whose counters already include the
// descendants. The root has no memory.current: see nodeMemory.
func cgroupMemoryV2(d string) (cgroupMem, bool) {
	var m cgroupMem
	var ok bool
	if m.usage, ok = readUint(filepath.Join(d, "memory.current")); !ok {
		return m, false
	}
	if m.limit, ok = readUint(filepath.Join(d, "memory.max")); !ok {
		m.limit = noLimit // "max"
	}
	st := readKeyed(filepath.Join(d, "memory.stat"))
	m.rss = st["anon"]
	m.pgfault, m.pgmajfault = st["pgfault"], st["pgmajfault"]
	m.setWorkingSet(st["inactive_file"])
	return m, true
}

// setWorkingSet is usage less the inactive file pages, never below 0.
func (m *cgroupMem) setWorkingSet(inactiveFile uint64) {
	m.workingSet = 0
	if inactiveFile < m.usage {
		m.workingSet = m.usage - inactiveFile
	}
}

// nodeMemory is the whole node's memory from /proc/meminfo and
// /proc/vmstat (their paths are parameters for tests), for when the root
// cgroup has no usage file (cgroup v2): used = total - free, and the
// working set leaves out the inactive file pages, as for a cgroup.
func nodeMemory(meminfo, vmstat string) (cgroupMem, bool) {
	kb := readKeyed(meminfo)
	total, ok := kb["MemTotal:"]
	if !ok {
		return cgroupMem{}, false
	}
	vm := readKeyed(vmstat)
	m := cgroupMem{usage: (total - kb["MemFree:"]) * 1024, rss: kb["AnonPages:"] * 1024, limit: total * 1024,
		pgfault: vm["pgfault"], pgmajfault: vm["pgmajfault"]}
	m.setWorkingSet(kb["Inactive(file):"] * 1024)
	return m, true
}

// noLimit: a cgroup v1 memory limit at or above this is "unlimited"
// (the kernel reports PAGE_COUNTER_MAX rounded to pages).
const noLimit = uint64(1) << 62

// procCPU is the node's cumulative cpu time (ns) from /proc/stat, for
// when the root cpuacct file is missing: every state but idle and iowait,
// at USER_HZ (100 ticks a second).
func procCPU() (uint64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var ticks uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 7 { // guest time is counted in user already
			break
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		ticks += n
	}
	return ticks * uint64(10*time.Millisecond), true
}

// bootTime is when the node started (/proc/stat btime).
func bootTime() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(s, 0)
		}
	}
	return time.Time{}
}

// rlimit is the node's pid limit and number of processes.
func rlimit(now time.Time) *statsapi.RlimitStats {
	r := &statsapi.RlimitStats{Time: metaTime(now)}
	if v, ok := readUint("/proc/sys/kernel/pid_max"); ok {
		r.MaxPID = ptr(int64(v))
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		r.NumOfRunningProcesses = ptr(int64(si.Procs))
	}
	return r
}

// statFs is the capacity and free space of the file system holding path.
func statFs(path string, now time.Time) (*statsapi.FsStats, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return nil, false
	}
	bs := uint64(st.Bsize)
	return &statsapi.FsStats{
		Time:           metaTime(now),
		CapacityBytes:  ptr(st.Blocks * bs),
		AvailableBytes: ptr(st.Bavail * bs),
		UsedBytes:      ptr((st.Blocks - st.Bfree) * bs),
		Inodes:         ptr(st.Files),
		InodesFree:     ptr(st.Ffree),
		InodesUsed:     ptr(st.Files - st.Ffree),
	}, true
}

// diskUsage is what a directory tree takes on disk (allocated blocks, as
// du) and its number of inodes; symlinks are not followed, and a hard link
// is counted once.
func diskUsage(dir string) (bytes, inodes uint64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		bytes += uint64(st.Blocks) * 512
		inodes++
		return nil
	})
	return bytes, inodes, err
}

// dirFs is a directory's usage on the file system it lives on.
func dirFs(dir string, now time.Time) *statsapi.FsStats {
	out, ok := statFs(dir, now)
	if !ok {
		return nil
	}
	used, inodes, err := diskUsage(dir)
	if err != nil {
		return nil
	}
	out.UsedBytes, out.InodesUsed = ptr(used), ptr(inodes)
	return out
}

func readUint(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// readKeyed reads a "key value" per line file (memory.stat, cpu.stat,
// /proc/vmstat; /proc/meminfo's keys keep their colon and its values are
// in kB).
func readKeyed(path string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			out[f[0]] = n
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
