package containerd

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSandboxesLink(t *testing.T) {
	link := func(dir string) string { return filepath.Join(rootDir(dir), criSandboxesDir) }
	target := func(dir string) string { return filepath.Join(StateDir(dir), "cri-sandboxes") }
	isLink := func(t *testing.T, dir string) {
		t.Helper()
		got, err := os.Readlink(link(dir))
		if err != nil || got != target(dir) {
			t.Fatalf("sandbox dir: link to %q, %v; want a link to %s", got, err, target(dir))
		}
		if fi, err := os.Stat(link(dir)); err != nil || !fi.IsDir() {
			t.Fatalf("sandbox dir link does not lead to a directory: %v", err)
		}
	}

	t.Run("fresh data dir", func(t *testing.T) {
		dir := t.TempDir()
		if err := sandboxesLink(dir); err != nil {
			t.Fatal(err)
		}
		isLink(t, dir)
		// A sandbox's files written through the link land in the state
		// dir; the containers' status files stay on disk.
		if err := os.MkdirAll(filepath.Join(link(dir), "s1"), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(target(dir), "s1")); err != nil {
			t.Errorf("sandbox dir not in the state dir: %v", err)
		}
		if fi, err := os.Lstat(filepath.Dir(link(dir))); err != nil || !fi.IsDir() {
			t.Errorf("the CRI plugin's directory is not a plain directory: %v %v", fi, err)
		}
		if err := sandboxesLink(dir); err != nil {
			t.Fatalf("second start: %v", err)
		}
		isLink(t, dir)
	})

	t.Run("after a reboot: the state dir is empty", func(t *testing.T) {
		dir := t.TempDir()
		if err := sandboxesLink(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(StateDir(dir)); err != nil {
			t.Fatal(err)
		}
		if err := sandboxesLink(dir); err != nil {
			t.Fatal(err)
		}
		isLink(t, dir)
	})

	t.Run("old directory with a running sandbox is kept", func(t *testing.T) {
		dir := t.TempDir()
		hosts := filepath.Join(link(dir), "s1", "hosts")
		if err := os.MkdirAll(filepath.Dir(hosts), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := sandboxesLink(dir); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(link(dir)); err != nil || !fi.IsDir() {
			t.Fatalf("old sandbox dir replaced: %v %v", fi, err)
		}
		if _, err := os.Stat(hosts); err != nil {
			t.Errorf("a running sandbox's file is gone: %v", err)
		}
	})

	t.Run("old empty directory becomes the link", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(link(dir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := sandboxesLink(dir); err != nil {
			t.Fatal(err)
		}
		isLink(t, dir)
	})
}
