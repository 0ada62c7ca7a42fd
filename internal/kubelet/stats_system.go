package kubelet

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-sh/skiff/internal/kubelet/server/statsapi"
)

// The stats Summary's system containers, named as upstream's kubelet names
// them: "pods" is the kubepods cgroup every pod lives under, "kubelet" the
// cgroup this process runs in, and "runtime" the cgroup of the CRI runtime
// (the process at the other end of its socket). A process in the root
// cgroup of a hierarchy gets no figure from it (that would be the whole
// node's), and "runtime" is left out while it shares the kubelet's cgroup.

// procCgroup is where a process sits in the cpu accounting and memory
// hierarchies (the same path twice on cgroup v2).
type procCgroup struct{ cpu, memory string }

// cgroupOf parses a /proc/<pid>/cgroup file.
func cgroupOf(path string, v2 bool) (procCgroup, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procCgroup{}, false
	}
	var pc procCgroup
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if v2 {
			if f[0] == "0" && f[1] == "" {
				return procCgroup{f[2], f[2]}, true
			}
			continue
		}
		for _, ctrl := range strings.Split(f[1], ",") {
			switch ctrl {
			case "cpuacct":
				pc.cpu = f[2]
			case "memory":
				pc.memory = f[2]
			}
		}
	}
	return pc, pc.cpu != "" || pc.memory != ""
}

func (s *statsProvider) systemContainers(now time.Time) []statsapi.ContainerStats {
	v2 := cgroupV2()
	self, selfOK := cgroupOf("/proc/self/cgroup", v2)
	started := processStart(os.Getpid())
	var out []statsapi.ContainerStats
	add := func(name string, cg procCgroup, start time.Time) {
		c := statsapi.ContainerStats{Name: name, StartTime: metaTime(start)}
		if cg.cpu != "" && cg.cpu != "/" {
			if usage, ok := cgroupCPU(cg.cpu); ok {
				c.CPU = s.cpu("system/"+name, usage, 0, now)
			}
		}
		if cg.memory != "" && cg.memory != "/" {
			if m, ok := cgroupMemory(cg.memory); ok {
				c.Memory = memoryStats(m, now)
			}
		}
		if c.CPU != nil || c.Memory != nil {
			out = append(out, c)
		}
	}
	// The kubelet sets the pods cgroup up: it is as old as the kubelet.
	add("pods", procCgroup{cgroupRoot, cgroupRoot}, started)
	if selfOK {
		add("kubelet", self, started)
	}
	if pid := s.runtimePID(); pid > 0 {
		if rt, ok := cgroupOf(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"), v2); ok && (!selfOK || rt != self) {
			add("runtime", rt, processStart(pid))
		}
	}
	return out
}

// runtimePID is the pid of the process serving the CRI socket, from the
// socket's peer credentials; it is looked up again once that process is
// gone (a restarted runtime). 0 when unknown.
func (s *statsProvider) runtimePID() int {
	s.runtime.mu.Lock()
	defer s.runtime.mu.Unlock()
	r := &s.runtime
	if r.pid > 0 && processStart(r.pid).Equal(r.start) {
		return r.pid
	}
	r.pid = socketPeerPID(strings.TrimPrefix(s.k.cfg.RuntimeEndpoint, "unix://"))
	r.start = processStart(r.pid)
	return r.pid
}

// runtimeProcess caches runtimePID.
type runtimeProcess struct {
	mu    sync.Mutex
	pid   int
	start time.Time
}

// socketPeerPID connects to a unix socket and returns the pid of the
// process that accepted, 0 if it cannot tell.
func socketPeerPID(path string) int {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return 0
	}
	return int(cred.Pid)
}

// processStart is when a process started (/proc/<pid>/stat's starttime,
// clock ticks after boot at USER_HZ 100); the zero time if it is gone.
func processStart(pid int) time.Time {
	if pid <= 0 {
		return time.Time{}
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return time.Time{}
	}
	// The command may hold spaces and parentheses: fields count from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return time.Time{}
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return time.Time{}
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64) // field 22 of the whole line
	if err != nil {
		return time.Time{}
	}
	return bootTime().Add(time.Duration(ticks) * 10 * time.Millisecond)
}
