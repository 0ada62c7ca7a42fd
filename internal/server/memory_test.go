package server

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestExecutableMapping(t *testing.T) {
	dev := unix.Mkdev(0xfe, 0)
	tests := []struct {
		line       string
		start, end uint64
		ok         bool
	}{
		{"00400000-0272a000 r-xp 00000000 fe:00 10183395   /bin/skiff", 0x400000, 0x272a000, true},
		{"0272a000-051ea000 r--p 0232a000 fe:00 10183395   /bin/skiff (deleted)", 0x272a000, 0x51ea000, true},
		// Writable data may hold writes: never dropped.
		{"051ea000-052ae000 rw-p 04dea000 fe:00 10183395   /bin/skiff", 0, 0, false},
		// Shared mappings, other files, other devices, anonymous memory.
		{"00400000-0272a000 r-xs 00000000 fe:00 10183395   /bin/skiff", 0, 0, false},
		{"7f4179932000-7f4179a88000 r-xp 00026000 fe:00 326269   /usr/lib/libc.so.6", 0, 0, false},
		{"00400000-0272a000 r-xp 00000000 fe:01 10183395   /bin/skiff", 0, 0, false},
		{"c009d000000-c009f000000 r--p 00000000 00:00 0 ", 0, 0, false},
		{"garbage", 0, 0, false},
		{"zz-0272a000 r-xp 00000000 fe:00 10183395 /bin/skiff", 0, 0, false},
	}
	for _, tc := range tests {
		s, e, ok := executableMapping(tc.line, dev, 10183395, []string{"r-xp", "r--p"})
		if ok != tc.ok || s != tc.start || e != tc.end {
			t.Errorf("%q: got %x-%x %v, want %x-%x %v", tc.line, s, e, ok, tc.start, tc.end, tc.ok)
		}
	}
}

func TestDropExecutableMappings(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "exe")
	if err := os.WriteFile(exe, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	d := fmt.Sprintf("%x:%02x", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	maps := filepath.Join(dir, "maps")
	content := fmt.Sprintf("1000-3000 r-xp 0 %[1]s %[2]d %[3]s\n3000-4000 r--p 0 %[1]s %[2]d %[3]s\n4000-5000 rw-p 0 %[1]s %[2]d %[3]s\n5000-6000 r--p 0 %[1]s %[4]d /other\n",
		d, st.Ino, exe, st.Ino+1)
	if err := os.WriteFile(maps, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	var got [][2]uintptr
	n, err := dropExecutableMappings(maps, exe, []string{"r-xp", "r--p"}, func(s, l uintptr) error {
		got = append(got, [2]uintptr{s, l})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 0x3000 || len(got) != 2 || got[0] != [2]uintptr{0x1000, 0x2000} || got[1] != [2]uintptr{0x3000, 0x1000} {
		t.Fatalf("dropped %#x bytes in %x", n, got)
	}
}

// A RELRO segment keeps read-only data; this test binary (Go's default
// build) has none, so both kinds may go.
func TestSafeToDrop(t *testing.T) {
	perms, err := safeToDrop("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	relro := false
	for _, p := range f.Progs {
		relro = relro || p.Type == elf.PT_GNU_RELRO
	}
	if relro == slices.Contains(perms, "r--p") {
		t.Errorf("RELRO %v, dropping %v", relro, perms)
	}
	if !slices.Contains(perms, "r-xp") {
		t.Errorf("code not dropped: %v", perms)
	}
}

// The real thing on this process: its code keeps running afterwards.
func TestReleaseStartupMemory(t *testing.T) {
	n, err := releaseStartupMemory()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Skip("no mapping of the test binary matched its device and inode")
	}
	t.Logf("dropped %d MB of executable mappings", n>>20)
}
