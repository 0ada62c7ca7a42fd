package server

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// The garbage collector's cost is roughly proportional to what is allocated
// divided by the heap's headroom (GOGC): every cycle marks the live heap,
// and a cycle starts each time the program has allocated GOGC% of it. A
// server under a burst of writes allocates ~90 KB per create, and at
// GOGC=100 a fifth of its CPU went to marking. An idle server allocates a
// few KB/s, and its resident set is what the heap goal lets it keep. So
// the tuner raises GOGC while the server allocates fast and puts it back
// once it is quiet, as a soft memory limit (GOMEMLIMIT, set here unless
// the operator set one) caps how far the heap may grow in any case.
const (
	gcIdlePercent = 100
	// While busy, the heap may grow by gcBusyHeadroom past the live heap
	// before a cycle starts, and by at most gcBusyMaxPercent of it: a
	// cycle's cost and its stretch of slower requests grow with the live
	// heap it marks, not with the headroom, so a small live heap gets the
	// same headroom as a large one (10,000 pods are ~200 MB live; at
	// GOGC=400 a sustained burst of creates met a cycle every ~6,000,
	// each slowing the requests of its ~200 ms of marking; with 1 GiB,
	// every ~15,000). A heap over 1 GiB live gets GOGC 100 (the idle
	// value), and the soft memory limit bounds all of it.
	gcBusyHeadroom   = 1 << 30
	gcBusyMaxPercent = 1000
	// gcBusyRate: allocating faster than this for gcBusyTicks ticks in a
	// row is busy (about 200 pod creates/s); an idle server with its
	// controllers allocates < 1 MB/s, but its controllers' start just
	// after ready allocates faster for a moment.
	gcBusyRate  = 16 << 20
	gcBusyTicks = 2
	// gcQuietAfter: how long the rate must stay below gcBusyRate before
	// GOGC goes back to the idle value.
	gcQuietAfter = 5 * time.Second
	gcTick       = 500 * time.Millisecond
)

// gcTuner decides GOGC from the allocation rate; its clock and counters are
// passed in, so it is tested without a runtime.
type gcTuner struct {
	percent   int
	lastAlloc uint64
	last      time.Time
	busySince time.Time // last time the rate was busy
	fast      int       // ticks in a row at gcBusyRate or faster
}

// next returns the GOGC value for the interval ending at now with alloc
// bytes allocated since start and live bytes in the heap after the last
// cycle, and whether it changed.
func (t *gcTuner) next(now time.Time, alloc, live uint64) (int, bool) {
	prev := t.percent
	if !t.last.IsZero() && now.After(t.last) {
		rate := float64(alloc-t.lastAlloc) / now.Sub(t.last).Seconds()
		if rate >= gcBusyRate {
			t.fast++
		} else {
			t.fast = 0
		}
		if t.fast >= gcBusyTicks {
			t.percent, t.busySince = busyPercent(live), now
		} else if t.percent != gcIdlePercent && now.Sub(t.busySince) >= gcQuietAfter {
			t.percent = gcIdlePercent
		}
	}
	t.last, t.lastAlloc = now, alloc
	return t.percent, t.percent != prev
}

// busyPercent is the GOGC that gives a live heap gcBusyHeadroom of
// headroom, within gcIdlePercent..gcBusyMaxPercent.
func busyPercent(live uint64) int {
	if live == 0 || live*gcBusyMaxPercent/100 <= gcBusyHeadroom {
		return gcBusyMaxPercent
	}
	return max(gcIdlePercent, int(gcBusyHeadroom*100/live))
}

// softMemoryLimit is the GOMEMLIMIT the server sets when the operator set
// none: half of the memory it may use (its cgroup's limit, else the
// machine's), so that a busy heap gives way to the machine's other work.
func softMemoryLimit() int64 {
	limit := memTotal()
	if cg := cgroupMemoryLimit(); cg > 0 && (limit <= 0 || cg < limit) {
		limit = cg
	}
	if limit <= 0 {
		return math.MaxInt64
	}
	return limit / 2
}

// startGCTuner sets the soft memory limit and returns the tuner's loop,
// which runs until ctx ends; nil if the operator fixed GOGC.
func startGCTuner() func(ctx context.Context) {
	if os.Getenv("GOGC") != "" {
		return nil
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit())
	}
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	t := &gcTuner{percent: gcIdlePercent}
	metrics.Read(sample)
	t.next(time.Now(), sample[0].Value.Uint64(), sample[1].Value.Uint64())
	return func(ctx context.Context) {
		tick := time.NewTicker(gcTick)
		defer tick.Stop()
		defer debug.SetGCPercent(gcIdlePercent)
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				metrics.Read(sample)
				if p, changed := t.next(now, sample[0].Value.Uint64(), sample[1].Value.Uint64()); changed {
					debug.SetGCPercent(p)
				}
			}
		}
	}
}

func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return parseMemTotal(string(b))
}

func cgroupMemoryLimit() int64 {
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(f); err == nil {
			return parseCgroupLimit(string(b))
		}
	}
	return 0
}

// parseMemTotal reads MemTotal (kB) from /proc/meminfo's text, in bytes.
func parseMemTotal(meminfo string) int64 {
	for _, line := range strings.Split(meminfo, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// parseCgroupLimit reads a cgroup memory limit in bytes: 0 for none ("max"
// in v2, a page-rounded MaxInt64 in v1) or for text it does not know.
func parseCgroupLimit(s string) int64 {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || v <= 0 || v >= 1<<60 {
		return 0
	}
	return v
}
