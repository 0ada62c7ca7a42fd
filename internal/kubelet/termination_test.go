package kubelet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	msgFile := write("msg", "bye\n")
	emptyFile := write("empty", "")
	bigFile := write("big", strings.Repeat("a", 5000)+"END")
	log := write("log", "2026-01-01T00:00:00.1Z stdout F first\n2026-01-01T00:00:00.2Z stderr P par\n2026-01-01T00:00:00.3Z stderr F tial\n")
	var longLog strings.Builder
	for i := range 100 {
		longLog.WriteString("2026-01-01T00:00:00Z stdout F line" + strings.Repeat("x", i%3) + "\n")
	}
	long := write("long", longLog.String())
	const path = "/dev/termination-log"
	c := func(policy corev1.TerminationMessagePolicy) *corev1.Container {
		return &corev1.Container{TerminationMessagePath: path, TerminationMessagePolicy: policy}
	}
	st := func(code int32, host, logPath string) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: code, LogPath: logPath,
			Mounts: []*runtimeapi.Mount{{ContainerPath: path, HostPath: host}}}
	}
	for _, tc := range []struct {
		name string
		c    *corev1.Container
		s    *runtimeapi.ContainerStatus
		want string
	}{
		{"file", c(corev1.TerminationMessageReadFile), st(0, msgFile, log), "bye\n"},
		{"file on failure too", c(corev1.TerminationMessageReadFile), st(1, msgFile, log), "bye\n"},
		{"empty file, File policy: nothing", c(corev1.TerminationMessageReadFile), st(1, emptyFile, log), ""},
		{"last 4 KiB of a big file", c(corev1.TerminationMessageReadFile), st(0, bigFile, log), strings.Repeat("a", 4093) + "END"},
		{"fallback: the log on failure (partial lines joined)", c(corev1.TerminationMessageFallbackToLogsOnError), st(2, emptyFile, log), "first\npartial\n"},
		{"fallback: not on success", c(corev1.TerminationMessageFallbackToLogsOnError), st(0, emptyFile, log), ""},
		{"fallback: the file wins", c(corev1.TerminationMessageFallbackToLogsOnError), st(2, msgFile, log), "bye\n"},
		{"fallback: a missing file", c(corev1.TerminationMessageFallbackToLogsOnError), st(2, filepath.Join(dir, "none"), log), "first\npartial\n"},
		{"running: nothing", c(corev1.TerminationMessageReadFile), &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_RUNNING}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := terminationMessage(tc.c, tc.s); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("fallback: at most 80 lines and 2048 bytes", func(t *testing.T) {
		got := terminationMessage(c(corev1.TerminationMessageFallbackToLogsOnError), st(1, emptyFile, long))
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 80 || len(got) > 2048 || !strings.HasPrefix(lines[0], "line") {
			t.Errorf("got %d lines, %d bytes: %q", len(lines), len(got), got)
		}
		if want := "line" + strings.Repeat("x", 99%3) + "\n"; !strings.HasSuffix(got, want) {
			t.Errorf("last line of %q, want %q", got, want)
		}
	})
}
