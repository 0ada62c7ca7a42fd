package server

import "testing"

func TestServerProcs(t *testing.T) {
	for _, tc := range []struct {
		name         string
		def, cpus    int
		envSet       bool
		want         int
		wantOverride bool
	}{
		{"one CPU", 1, 1, false, 2, true},
		{"two CPUs", 2, 2, false, 4, true},
		{"four CPUs", 4, 4, false, 8, true},
		{"many CPUs get at most four more", 32, 32, false, 36, true},
		{"GOMAXPROCS in the environment", 3, 2, true, 3, false},
		{"CPU quota below the CPU count", 2, 8, false, 2, false},
		{"no CPU count", 1, 0, false, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := serverProcs(tc.def, tc.cpus, tc.envSet)
			if got != tc.want || ok != tc.wantOverride {
				t.Errorf("serverProcs(%d, %d, %v) = %d, %v; want %d, %v", tc.def, tc.cpus, tc.envSet, got, ok, tc.want, tc.wantOverride)
			}
		})
	}
}
