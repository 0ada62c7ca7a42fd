package containerd

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseMountInfoLine(t *testing.T) {
	for _, tc := range []struct {
		line   string
		want   mountEntry
		wantOK bool
	}{
		{"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw", mountEntry{point: "/"}, true},
		{"42 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw", mountEntry{point: "/run/netns", shared: true}, true},
		{"50 42 0:4 net:[1] /run/netns/cni-1 rw master:1 - nsfs nsfs rw", mountEntry{point: "/run/netns/cni-1"}, true},
		{"60 27 0:50 / /data/node\\0401/agent rw shared:7 master:3 - tmpfs tmpfs rw", mountEntry{point: "/data/node 1/agent", shared: true}, true},
		// "shared:" after the separator is a super option, not a tag.
		{"61 27 0:51 / /x rw - tmpfs shared:9 rw", mountEntry{point: "/x"}, true},
		{"short line", mountEntry{}, false},
	} {
		got, ok := parseMountInfoLine(tc.line)
		if ok != tc.wantOK || got != tc.want {
			t.Errorf("parseMountInfoLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestContainingMount(t *testing.T) {
	mounts := []mountEntry{{point: "/"}, {point: "/run/netns", shared: true}, {point: "/data"}, {point: "/data/agent", shared: true}, {point: "/data"}}
	for _, tc := range []struct{ dir, want string }{
		{"/run/netns", "/run/netns"},
		{"/run/netnsx", "/"},
		{"/data/agent/containerd", "/data/agent"},
		{"/data/other", "/data"},
		{"/tmp", "/"},
	} {
		m, ok := containingMount(mounts, tc.dir)
		if !ok || m.point != tc.want {
			t.Errorf("containingMount(%s) = %q, %v; want %q", tc.dir, m.point, ok, tc.want)
		}
	}
	// The last of two mounts on one point is the visible one.
	m, _ := containingMount(mounts, "/data/x")
	if m != mounts[4] {
		t.Errorf("containingMount picked a hidden mount: %+v", m)
	}
}

func TestShimWrapper(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (bind mounts)")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(Dir(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := prepareShimMountNamespaces(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := UnmountState(dir); err != nil {
			t.Error(err)
		}
	})
	if d == "" {
		t.Skip("unshare or the runc shim is not installed")
	}
	b, err := os.ReadFile(filepath.Join(d, shimBinary))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "--mount --propagation slave") || !strings.Contains(string(b), shimBinary+"' \"$@\"") {
		t.Errorf("wrapper:\n%s", b)
	}
	mounts, err := readMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := containingMount(mounts, filepath.Join(agentDir(dir), "pods")); !ok || !m.shared {
		t.Errorf("agent dir is not on a shared mount: %+v", m)
	}
	// Again (an agent restart): no second bind mount.
	if _, err := prepareShimMountNamespaces(dir); err != nil {
		t.Fatal(err)
	}
	mounts, _ = readMountInfo()
	n := 0
	for _, m := range mounts {
		if m.point == agentDir(dir) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d mounts on the agent dir after a second start, want 1", n)
	}
	if ok, err := mountStateTmpfs(dir); err != nil || !ok {
		t.Fatalf("mountStateTmpfs = %v, %v", ok, err)
	}
	if ok, err := isTmpfs(StateDir(dir)); err != nil || !ok {
		t.Fatalf("state dir not a tmpfs: %v %v", ok, err)
	}
	if err := UnmountState(dir); err != nil {
		t.Fatal(err)
	}
	mounts, _ = readMountInfo()
	for _, m := range mounts {
		if strings.HasPrefix(m.point, dir) {
			t.Errorf("left mounted: %s", m.point)
		}
	}
}

func TestShimWrapperScript(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	// The fallback prints what it would run instead of running it.
	script := strings.ReplaceAll(shimWrapperScript, "@UNSHARE@", "echo unshare")
	script = strings.ReplaceAll(script, "@SHIM@", "shim")
	starts := t.TempDir()
	script = strings.ReplaceAll(script, "@STARTS@", shellQuote(starts))
	wrapper := filepath.Join(dir, "wrapper")
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	// A socket where shims put theirs, under a random name.
	if _, err := os.Stat("/run/containerd/s"); err != nil {
		t.Skipf("no /run/containerd/s: %v", err)
	}
	rnd := make([]byte, 32)
	rand.Read(rnd)
	sock := "/run/containerd/s/" + hex.EncodeToString(rnd)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() // removes the socket
	args := []string{"-namespace", "k8s.io", "-address", "/x/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1", "start"}
	for _, tc := range []struct {
		name, spec, want string
		address          bool
	}{
		{"container of a running group", `{"annotations":{"io.kubernetes.cri.container-type":"container","skiff.sh/shim-socket":"` + sock + `"}}`, "unix://" + sock, true},
		{"annotations in the other order", `{"annotations":{"skiff.sh/shim-socket":"` + sock + `","io.kubernetes.cri.container-type":"container"}}`, "unix://" + sock, true},
		{"sandbox of a running group", `{"annotations":{"io.kubernetes.cri.container-type":"sandbox","skiff.sh/shim-socket":"` + sock + `"}}`, "unix://" + sock, true},
		{"no socket annotation", `{"annotations":{"io.kubernetes.cri.container-type":"container"}}`, "unshare --mount --propagation slave shim " + strings.Join(args, " ") + "\n", false},
		{"socket annotation of another key", `{"annotations":{"x.skiff.sh/shim-socket-not":"` + sock + `"}}`, "unshare --mount --propagation slave shim " + strings.Join(args, " ") + "\n", false},
		{"no socket yet", `{"annotations":{"io.kubernetes.cri.container-type":"container","skiff.sh/shim-socket":"` + sock + `x"}}`, "unshare --mount --propagation slave shim " + strings.Join(args, " ") + "\n", false},
		{"socket outside /run/containerd/s", `{"annotations":{"io.kubernetes.cri.container-type":"container","skiff.sh/shim-socket":"/tmp/s"}}`, "unshare --mount --propagation slave shim " + strings.Join(args, " ") + "\n", false},
	} {
		bundle := t.TempDir()
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(tc.spec), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(wrapper, args...)
		cmd.Dir = bundle
		out, err := cmd.Output()
		if err != nil || string(out) != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, out, err, tc.want)
		}
		b, err := os.ReadFile(filepath.Join(bundle, "address"))
		if tc.address && (err != nil || string(b) != tc.want) {
			t.Errorf("%s: address file %q, %v", tc.name, b, err)
		}
		if !tc.address && err == nil {
			t.Errorf("%s: address file written", tc.name)
		}
	}
	// A container start the kubelet announced: the socket comes from the
	// file named by the ID, the spec is not read.
	fallback := "unshare --mount --propagation slave shim "
	for _, tc := range []struct {
		name, id, file, want string
	}{
		{"announced", "0a1b", sock, "unix://" + sock},
		{"announced, no socket there", "0a1b", sock + "0", fallback},
		{"announced socket outside /run/containerd/s", "0a1b", "/tmp/s", fallback},
		{"announced socket with a path in it", "0a1b", "/run/containerd/s/../" + filepath.Base(sock), fallback},
		{"ID not hex", "../x", sock, fallback},
	} {
		if err := os.WriteFile(filepath.Join(starts, filepath.Base(tc.id)), []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
		bundle := t.TempDir()
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"annotations":{}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(wrapper, "-namespace", "k8s.io", "-id", tc.id, "start")
		cmd.Dir = bundle
		out, err := cmd.Output()
		if err != nil || !strings.HasPrefix(string(out), tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.name, out, err, tc.want)
		}
		b, err := os.ReadFile(filepath.Join(bundle, "address"))
		if addr := tc.want != fallback; addr != (err == nil) || addr && string(b) != tc.want {
			t.Errorf("%s: address file %q, %v", tc.name, b, err)
		}
		os.Remove(filepath.Join(starts, filepath.Base(tc.id)))
	}
	// delete and other actions go to the real shim.
	cmd := exec.Command(wrapper, "-namespace", "k8s.io", "-id", "c1", "delete")
	cmd.Dir = t.TempDir()
	if out, err := cmd.Output(); err != nil || !strings.HasPrefix(string(out), "unshare --mount") {
		t.Errorf("delete: %q, %v", out, err)
	}
}

// TestStateTmpfsKeepsOldTasks: a state dir on disk with the tasks of an
// agent from before the state tmpfs stays as it is (a tmpfs would hide
// them), with runc's default root; without tasks it gets the tmpfs and
// runc's root under it.
func TestStateTmpfsKeepsOldTasks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	if ok, _ := isTmpfs(dir); ok {
		t.Skip("the temp dir is on a tmpfs already")
	}
	bundle := filepath.Join(StateDir(dir), "io.containerd.runtime.v2.task", "k8s.io", "abc123")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	if ok, err := mountStateTmpfs(dir); err != nil || ok {
		t.Fatalf("with an old task: mountStateTmpfs = %v, %v; want false, no mount", ok, err)
	}
	if _, err := os.Stat(bundle); err != nil {
		t.Fatalf("the old task's bundle is hidden: %v", err)
	}
	if r := runcRootFor(dir); r != "" {
		t.Errorf("runc root with old tasks = %q, want runc's default", r)
	}
	b, err := renderConfig(&Config{DataDir: dir, SandboxImage: "pause"}, false)
	if err != nil || strings.Contains(string(b), "Root = ") {
		t.Errorf("config with old tasks sets a runc Root (%v):\n%s", err, b)
	}

	if err := os.RemoveAll(filepath.Join(StateDir(dir), "io.containerd.runtime.v2.task")); err != nil {
		t.Fatal(err)
	}
	if ok, err := mountStateTmpfs(dir); err != nil || !ok {
		t.Fatalf("without tasks: mountStateTmpfs = %v, %v; want a tmpfs", ok, err)
	}
	t.Cleanup(func() { UnmountState(dir) })
	if r := runcRootFor(dir); r != runcRoot(dir) {
		t.Errorf("runc root on the tmpfs = %q, want %q", r, runcRoot(dir))
	}
	b, err = renderConfig(&Config{DataDir: dir, SandboxImage: "pause"}, false)
	if err != nil || strings.Count(string(b), "Root = "+strconv.Quote(runcRoot(dir))) != 2 {
		t.Errorf("config on the tmpfs: want both runtimes' Root %s (%v):\n%s", runcRoot(dir), err, b)
	}
}
