package kubelet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Termination message limits, as upstream's kubelet has them.
const (
	maxTerminationMessage         = 4 * 1024
	maxTerminationMessageLogBytes = 2048
	maxTerminationMessageLogLines = 80
)

// terminationLogPath is the host file mounted at a container attempt's
// terminationMessagePath: <volatile dir>/containers/<name>/<attempt>.
func (k *Kubelet) terminationLogPath(uid, name string, attempt uint32) string {
	return k.volatilePath(uid, "containers", name, strconv.Itoa(int(attempt)))
}

// terminationMount creates the (empty, world-writable, so any runAsUser may
// write it) host file of a container attempt's termination message and
// returns its mount; nil if the container names no path.
func (k *Kubelet) terminationMount(p *corev1.Pod, c *corev1.Container, attempt uint32) (*runtimeapi.Mount, error) {
	if c.TerminationMessagePath == "" {
		return nil, nil
	}
	path := k.terminationLogPath(string(p.UID), c.Name, attempt)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	f.Close()
	// Chmod, as umask took bits off the create mode.
	if err := os.Chmod(path, 0o666); err != nil {
		return nil, err
	}
	return &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: path}, nil
}

// terminationMessage is what upstream adds to an exited container's
// message: the file at terminationMessagePath (its last 4 KiB), or with
// FallbackToLogsOnError and a failed container whose file is empty, the
// tail of its log.
func terminationMessage(c *corev1.Container, s *runtimeapi.ContainerStatus) string {
	if c == nil || s.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		return ""
	}
	fallback := c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError &&
		s.ExitCode != 0 && s.Reason != "ContainerCannotRun"
	msg, checkLogs := "", fallback
	if c.TerminationMessagePath != "" {
		for _, m := range s.Mounts {
			if m.ContainerPath != c.TerminationMessagePath {
				continue
			}
			b, err := readAtMost(m.HostPath, maxTerminationMessage)
			switch {
			case errors.Is(err, os.ErrNotExist):
			case err != nil:
				return fmt.Sprintf("Error on reading termination log %s: %v", m.HostPath, err)
			default:
				msg, checkLogs = string(b), fallback && len(b) == 0
			}
			break
		}
	}
	if checkLogs && filepath.IsAbs(s.LogPath) {
		msg = lastLogLines(s.LogPath, maxTerminationMessageLogLines, maxTerminationMessageLogBytes)
	}
	return msg
}

// readAtMost reads the last max bytes of a file.
func readAtMost(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		if _, err := f.Seek(fi.Size()-max, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, max))
}

// lastLogLines is the content of the last lines of a CRI log file
// ("<time> <stream> <P|F> <text>"; P lines continue in the next one), at
// most maxBytes of it.
func lastLogLines(path string, lines, maxBytes int) string {
	b, err := readAtMost(path, 1<<20)
	if err != nil {
		return ""
	}
	var out []string
	var partial strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) < 3 {
			continue
		}
		text := ""
		if len(f) == 4 {
			text = f[3]
		}
		partial.WriteString(text)
		if f[2] == "P" {
			continue
		}
		out = append(out, partial.String()+"\n")
		partial.Reset()
	}
	if len(out) > lines {
		out = out[len(out)-lines:]
	}
	s := strings.Join(out, "")
	if len(s) > maxBytes {
		s = s[:maxBytes]
	}
	return s
}
