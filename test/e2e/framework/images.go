package framework

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/skiff-sh/skiff/internal/agent/images"
)

// BusyboxImage is the reference of the test image BusyboxTarball builds.
const BusyboxImage = "skiff.sh/test/busybox:1"

var busyboxOnce struct {
	sync.Mutex
	path string
}

// cacheDir holds downloads shared by test runs (Debian packages).
func cacheDir(t testing.TB) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	d := filepath.Join(base, "skiff-e2e")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// BusyboxTarball returns an OCI-layout tarball of a one-layer image made
// from Debian's busybox-static: /bin/busybox with a symlink per applet
// (sh, sleep, httpd, wget, nslookup, ...). The .deb is fetched once with
// `apt-get download` into the user's cache directory; nothing is installed
// on the host. The tarball is built once per test process, into the cache too.
func BusyboxTarball(t testing.TB) string {
	t.Helper()
	busyboxOnce.Lock()
	defer busyboxOnce.Unlock()
	if busyboxOnce.path != "" {
		return busyboxOnce.path
	}
	deb := debPackage(t, "busybox-static")
	root, err := os.MkdirTemp("", "skiff-busybox-root-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	run(t, "dpkg-deb", "-x", deb, root)
	bb := filepath.Join(root, "bin", "busybox")
	// Applets as symlinks to /bin/busybox, where busybox itself says they go.
	for _, applet := range strings.Fields(run(t, bb, "--list-full")) {
		p := filepath.Join(root, applet)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/bin/busybox", p); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tmp", "etc", "proc", "sys", "dev", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(root, "usr", "share")); err != nil { // docs
		t.Fatal(err)
	}
	// Rebuilt by every test process (it is quick), so the suite exercises
	// the layout writer; renamed into place, so concurrent runs do not mix.
	f, err := os.CreateTemp(cacheDir(t), "busybox-*.tar.tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := images.WriteFromDir(f, images.Image{Ref: BusyboxImage, Config: images.RuntimeConfig{Cmd: []string{"sh"}}}, root); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cacheDir(t), "busybox.tar")
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
	busyboxOnce.path = path
	return path
}

// debPackage returns the path of a Debian package's .deb in the cache,
// fetching it with `apt-get download` (after `apt-get update` if apt has no
// lists yet) when missing.
func debPackage(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(cacheDir(t), "debs")
	if m, _ := filepath.Glob(filepath.Join(dir, name+"_*.deb")); len(m) > 0 {
		return m[len(m)-1]
	}
	tmp, err := os.MkdirTemp(cacheDir(t), "download-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("apt-get", "download", name)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("apt-get download %s: %v: %s; updating apt lists", name, err, out)
		run(t, "apt-get", "update", "-qq")
		cmd = exec.Command("apt-get", "download", name)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get download %s: %v: %s", name, err, out)
		}
	}
	m, _ := filepath.Glob(filepath.Join(tmp, name+"_*.deb"))
	if len(m) != 1 {
		t.Fatalf("apt-get download %s: got %v", name, m)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(m[0]))
	if err := os.Rename(m[0], dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(context.Background(), name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return string(out)
}
