package server

import (
	"testing"
	"time"
)

func TestGCTuner(t *testing.T) {
	t0 := time.Unix(1000, 0)
	mb := uint64(1 << 20)
	gcBusyPercent := busyPercent(30 * mb) // the live heap below
	steps := []struct {
		at      time.Duration
		alloc   uint64 // cumulative
		percent int
		changed bool
	}{
		{0, 100 * mb, gcIdlePercent, false},                // first sample: no rate yet
		{time.Second, 101 * mb, gcIdlePercent, false},      // 1 MB/s: idle
		{2 * time.Second, 151 * mb, gcIdlePercent, false},  // 50 MB/s for one tick: a start-up burst
		{3 * time.Second, 152 * mb, gcIdlePercent, false},  // then quiet
		{4 * time.Second, 202 * mb, gcIdlePercent, false},  // 50 MB/s
		{5 * time.Second, 252 * mb, gcBusyPercent, true},   // and again: busy
		{6 * time.Second, 253 * mb, gcBusyPercent, false},  // quiet for 1 s: stays busy
		{9 * time.Second, 254 * mb, gcBusyPercent, false},  // 4 s since the burst
		{10 * time.Second, 254 * mb, gcIdlePercent, true},  // 5 s since the burst: idle
		{11 * time.Second, 274 * mb, gcIdlePercent, false}, // 20 MB/s
		{12 * time.Second, 294 * mb, gcBusyPercent, true},  // 20 MB/s again
		{12 * time.Second, 300 * mb, gcBusyPercent, false}, // no time passed: no rate
		{13 * time.Second, 310 * mb, gcBusyPercent, false}, // 10 MB/s: not fast, not yet quiet
		{17 * time.Second, 311 * mb, gcIdlePercent, true},  // 5 s since the last fast tick
	}
	tu := &gcTuner{percent: gcIdlePercent}
	for i, s := range steps {
		p, changed := tu.next(t0.Add(s.at), s.alloc, 30*mb)
		if p != s.percent || changed != s.changed {
			t.Errorf("step %d (%v): got %d, %v; want %d, %v", i, s.at, p, changed, s.percent, s.changed)
		}
	}
}

func TestBusyPercent(t *testing.T) {
	mb := uint64(1 << 20)
	for live, want := range map[uint64]int{
		0:         gcBusyMaxPercent,
		30 * mb:   gcBusyMaxPercent, // 300 MB of headroom
		100 * mb:  gcBusyMaxPercent, // 1,000 MB
		110 * mb:  930,              // 1 GiB from here on
		256 * mb:  400,
		512 * mb:  200,
		2048 * mb: gcIdlePercent,
		8192 * mb: gcIdlePercent,
	} {
		if got := busyPercent(live); got != want {
			t.Errorf("busyPercent(%d MB) = %d, want %d", live/mb, got, want)
		}
	}
}

func TestMemoryLimits(t *testing.T) {
	if got := parseMemTotal("MemTotal:       24683520 kB\nMemFree:  1 kB\n"); got != 24683520<<10 {
		t.Errorf("MemTotal: got %d", got)
	}
	if got := parseMemTotal("MemFree: 1 kB\n"); got != 0 {
		t.Errorf("no MemTotal: got %d", got)
	}
	for in, want := range map[string]int64{
		"max\n":                 0,
		"9223372036854771712\n": 0, // cgroup v1 without a limit
		"1073741824\n":          1 << 30,
		"":                      0,
		"-1":                    0,
	} {
		if got := parseCgroupLimit(in); got != want {
			t.Errorf("parseCgroupLimit(%q) = %d, want %d", in, got, want)
		}
	}
}
