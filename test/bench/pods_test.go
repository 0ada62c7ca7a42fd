package main

import "testing"

func TestParseMachineCPU(t *testing.T) {
	const stat = "cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 50 2 25 400 10 1 1 0 0 0\ncpu1 50 3 25 400 10 2 1 0 0 0\nintr 1 2 3\nctxt 99\n"
	for _, tc := range []struct {
		name string
		stat string
		want machineCPU
	}{
		// guest (7) is in user already: 100+5+50+800+20+3+2+0.
		{"two cpus", stat, machineCPU{total: 980, idle: 820, cpus: 2}},
		{"empty", "", machineCPU{}},
		{"per-cpu line first", "cpu0 1 2 3 4 5 6 7 8 9 10\n", machineCPU{}},
		{"malformed", "cpu  1 x 3 4\ncpu0 1 2 3 4\n", machineCPU{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseMachineCPU(tc.stat); got != tc.want {
				t.Errorf("parseMachineCPU = %+v, want %+v", got, tc.want)
			}
		})
	}
	d := machineCPU{total: 980, idle: 820, cpus: 2}.sub(machineCPU{total: 480, idle: 420, cpus: 2})
	if d != (machineCPU{total: 500, idle: 400, cpus: 2}) {
		t.Errorf("sub = %+v", d)
	}
}
