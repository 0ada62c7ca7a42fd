package containerd

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// netnsDir is where containerd 1.6 pins sandbox network namespaces (a bind
// mount each). Its CRI plugin could pin them in its state dir instead
// (netns_mounts_under_state_dir), a tmpfs here; that would lengthen each
// pin's line in every mount table runc and the shims read by the state
// dir's path. Those reads are a cost per byte (~5% of a 100-pod burst's
// CPU); estimated from the burst's profile (not measured), the longer lines
// would cost ~0.4% of its CPU and the pin's file on a disk /run costs
// ~0.1%, so the pins stay where `ip netns` and other tools look for them.
const netnsDir = "/run/netns"

// shimBinary is the runc v2 shim containerd runs for io.containerd.runc.v2.
const shimBinary = "containerd-shim-runc-v2"

// The shims run in mount namespaces of their own: runc, which every
// container start runs three times under its shim, parses
// /proc/self/mountinfo several times per run, and each running pod adds
// two overlay root file systems to the mount table that only its shim
// needs (the longest lines there). A shim started through the wrapper
// unshares its mount namespace as a slave of the agent's: the mounts the
// shims need from outside (the network namespaces containerd pins, each
// sandbox's /dev/shm, the kubelet's volumes) reach it, the root file
// systems it mounts stay in it. Every shim of a group is one process, so a
// namespace holds the root file systems of its group only, and it goes
// with its shim. For mounts made outside to reach the shims, the places
// they are made in must be shared mounts: the agent directory (kubelet
// volumes, containerd state) and netnsDir.

// shimWrapperDir holds the wrapper, named as the shim: it goes first in
// containerd's PATH.
func shimWrapperDir(dataDir string) string { return filepath.Join(Dir(dataDir), "shim") }

// ShimStartDir is where the kubelet announces a container start to the
// shim wrapper: a file named by the container ID holding the socket of its
// pod's shim group (internal/kubelet/shimgroups.go). It is in containerd's
// state dir, a tmpfs when Config.StateTmpfs.
func ShimStartDir(dataDir string) string {
	return filepath.Join(StateDir(dataDir), "skiff-shim-starts")
}

// agentDir holds the kubelet's pods and containerd's directories.
func agentDir(dataDir string) string { return filepath.Join(dataDir, "agent") }

// prepareShimMountNamespaces makes agentDir and netnsDir shared mounts and
// writes the shim wrapper. It returns the wrapper's directory, or "" (shims
// run in the agent's mount namespace) when unshare or the shim is missing.
func prepareShimMountNamespaces(dataDir string) (string, error) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return "", nil
	}
	shim, err := exec.LookPath(shimBinary)
	if err != nil {
		return "", nil
	}
	for _, d := range []string{agentDir(dataDir), netnsDir} {
		if err := makeShared(d); err != nil {
			return "", fmt.Errorf("containerd: shim mount namespaces: %w", err)
		}
	}
	dir := shimWrapperDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("containerd: shim wrapper: %w", err)
	}
	path := filepath.Join(dir, shimBinary)
	script := strings.ReplaceAll(shimWrapperScript, "@UNSHARE@", shellQuote(unshare))
	script = strings.ReplaceAll(script, "@SHIM@", shellQuote(shim))
	script = strings.ReplaceAll(script, "@STARTS@", shellQuote(ShimStartDir(dataDir)))
	if old, err := os.ReadFile(path); err != nil || string(old) != script {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(script), 0o700); err != nil {
			return "", fmt.Errorf("containerd: write shim wrapper: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", fmt.Errorf("containerd: write shim wrapper: %w", err)
		}
	}
	return dir, nil
}

// shimWrapperScript is the shim wrapper (dash). containerd runs
// `<shim> -namespace NS -address A -publish-binary B -id ID [-debug] start`
// in the new task's bundle and reads the shim's address from its output.
// When the group's shim runs already (every start in a group but its
// first), the real shim's start would only find its socket, write it to the
// bundle's address file and print it, for a sandbox as for a container: the
// wrapper does that itself when the socket the kubelet put in the spec
// (skiff.sh/shim-socket, see internal/kubelet/shimgroups.go) exists, which
// saves an unshare and a Go process start per task (grep runs in the C
// locale, which spares it loading the locale's tables). For a container the
// kubelet names the socket in a file of ShimStartDir named by the container
// ID while it starts it, which saves the grep of the spec too. Anything
// else (a
// group's first start, delete, no socket) goes to the real shim in a mount
// namespace of its own. A socket left by a shim that died sends the start
// to a dead address; the start fails, and the kubelet moves the group to a
// new name (and shim) after a failed sandbox start.
const shimWrapperScript = `#!/bin/sh
# Generated by skiff (internal/agent/containerd/shimns.go).
for last; do :; done
if [ "$last" = start ]; then
	sock= id= prev=
	for a; do
		[ "$prev" = -id ] && id=$a
		prev=$a
	done
	case $id in
	''|*[!0-9a-f]*) ;;
	*) [ -f @STARTS@/"$id" ] && read -r sock < @STARTS@/"$id" ;;
	esac
	if [ -z "$sock" ] && [ -f config.json ]; then
		sock=$(LC_ALL=C grep -o -m 1 '"skiff.sh/shim-socket":"/run/containerd/s/[0-9a-f]*"' config.json 2>/dev/null)
		sock=${sock#*'":"'}
		sock=${sock%'"'}
	fi
	case $sock in
	/run/containerd/s/*[!0-9a-f]*) sock= ;;
	/run/containerd/s/?*) ;;
	*) sock= ;;
	esac
	if [ -n "$sock" ] && [ -S "$sock" ]; then
		printf 'unix://%s' "$sock" > address && printf 'unix://%s' "$sock" && exit 0
	fi
fi
exec @UNSHARE@ --mount --propagation slave @SHIM@ "$@"
`

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	point  string
	shared bool
}

func readMountInfo() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if e, ok := parseMountInfoLine(sc.Text()); ok {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// parseMountInfoLine reads the mount point (field 5, octal escapes
// undone) and whether the optional fields say shared:N.
func parseMountInfoLine(l string) (mountEntry, bool) {
	f := strings.Fields(l)
	if len(f) < 7 {
		return mountEntry{}, false
	}
	e := mountEntry{point: unescapeMountPath(f[4])}
	for _, o := range f[6:] {
		if o == "-" {
			break
		}
		if strings.HasPrefix(o, "shared:") {
			e.shared = true
		}
	}
	return e, true
}

func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// containingMount is the last mount (the visible one) whose mount point is
// dir or its closest parent.
func containingMount(mounts []mountEntry, dir string) (mountEntry, bool) {
	var best mountEntry
	found := false
	for _, m := range mounts {
		if m.point == dir || m.point == "/" || strings.HasPrefix(dir, m.point+"/") {
			if !found || len(m.point) >= len(best.point) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// makeShared makes dir's mount shared, so that mounts made under it later
// propagate to the mount namespaces copied from this one as slaves. A dir
// on a shared mount already is left alone; a dir that is not a mount point
// is bind-mounted onto itself first, with what is mounted below it (as
// `ip netns` does for /run/netns and upstream's kubelet for its root dir).
func makeShared(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	mounts, err := readMountInfo()
	if err != nil {
		return err
	}
	m, ok := containingMount(mounts, dir)
	if ok && m.shared {
		return nil
	}
	if !ok || m.point != dir {
		if err := syscall.Mount(dir, dir, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", dir, err)
		}
	}
	if err := syscall.Mount("", dir, "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}

// unmountAgentDir removes the bind mount makeShared put on the agent
// directory, if there is one.
func unmountAgentDir(dataDir string) error {
	dir := agentDir(dataDir)
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	mounts, err := readMountInfo()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if m.point == dir {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("containerd: unmount %s: %w", dir, err)
			}
			return nil
		}
	}
	return nil
}
