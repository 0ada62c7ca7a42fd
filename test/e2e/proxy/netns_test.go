package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// The busybox image's wget crashes (static glibc, no NSS), so requests
// "from a pod" are made here, on a thread that entered the pod's network
// namespace: the packets leave the pod's veth with the pod's IP exactly as
// the pod's own would.

// podPID is a process of the pod, found through its cgroup (v1).
func podPID(t *testing.T, p *corev1.Pod) int {
	t.Helper()
	for _, pattern := range []string{"/sys/fs/cgroup/pids/kubepods/pod%s/*/cgroup.procs", "/sys/fs/cgroup/pids/kubepods/*/pod%s/*/cgroup.procs",
		"/sys/fs/cgroup/memory/kubepods/pod%s/*/cgroup.procs", "/sys/fs/cgroup/memory/kubepods/*/pod%s/*/cgroup.procs"} {
		files, _ := filepath.Glob(fmt.Sprintf(pattern, p.UID))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if fields := strings.Fields(string(b)); len(fields) > 0 {
				if pid, err := strconv.Atoi(fields[0]); err == nil {
					return pid
				}
			}
		}
	}
	t.Fatalf("no process of pod %s found in its cgroup", p.Name)
	return 0
}

// inPod runs f on a thread in the network namespace of process pid.
func inPod(pid int, f func() (string, error)) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, now in another namespace, exits with
		// the goroutine instead of going back to the scheduler.
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		s, err := f()
		ch <- result{s, err}
	}()
	r := <-ch
	return r.s, r.err
}

// podGet does GET http://addr/ from the pod's network namespace on a fresh
// connection and returns the body. Dial creates the socket on the calling
// (locked) thread, so it belongs to the pod's namespace.
func podGet(pid int, addr string) (string, error) {
	return inPod(pid, func() (string, error) {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: test\r\n\r\n"); err != nil {
			return "", err
		}
		b, err := io.ReadAll(c)
		if err != nil {
			return "", err
		}
		_, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
		if !ok || !bytes.HasPrefix(b, []byte("HTTP/1.")) {
			return "", fmt.Errorf("not an HTTP response: %q", b)
		}
		if status, _, _ := bytes.Cut(b, []byte("\r\n")); !bytes.Contains(status, []byte(" 200 ")) {
			return "", fmt.Errorf("GET %s: %s", addr, status)
		}
		return strings.TrimSpace(string(body)), nil
	})
}
