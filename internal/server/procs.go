package server

import (
	"os"
	"runtime"
)

// The API server's requests spend much of their time handing work between
// goroutines (the HTTP/2 connection's read and write loops, etcd's apply
// loop, the watch cache, informers). The reasoning, not shown directly:
// with as many Ps as CPUs, a thread the kernel preempts holds its P, and the
// goroutines queued on it wait for the thread to run again even when the
// other CPU could take them; on a small machine shared with clients, that
// wait is the tail of the write latency.
// A few Ps more than CPUs let the kernel run whichever thread is ready. The
// extra Ps are bounded: each costs a little memory and GC work. Measured on
// 2 CPUs, the gain is small and inside the machine's drift (100-client p99
// median 53.9 against 55.6 ms over six pairs; docs/architecture.md, ninth
// round). Setting GOMAXPROCS also ends the runtime's own updates of it when
// a CPU quota changes while the server runs; the quota at start counts.
const extraProcsMax = 4

// serverProcs returns the GOMAXPROCS the server runs with, given the
// runtime's default (which already counts a cgroup CPU limit), the number
// of CPUs the process may run on, and whether GOMAXPROCS was set in the
// environment. ok is false when the default stays: the operator chose a
// value, or a CPU quota holds the default below the CPU count (more Ps
// than the quota's CPUs would only be throttled).
func serverProcs(def, cpus int, envSet bool) (n int, ok bool) {
	if envSet || def < cpus || cpus < 1 {
		return def, false
	}
	return cpus + min(cpus, extraProcsMax), true
}

// setServerProcs applies serverProcs to this process and returns the value
// in force.
func setServerProcs() int {
	_, envSet := os.LookupEnv("GOMAXPROCS")
	def := runtime.GOMAXPROCS(0)
	if n, ok := serverProcs(def, runtime.NumCPU(), envSet); ok {
		runtime.GOMAXPROCS(n)
		return n
	}
	return def
}
