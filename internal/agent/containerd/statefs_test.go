package containerd

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStateLinks(t *testing.T) {
	link := func(dir, rel string) string { return filepath.Join(rootDir(dir), rel) }
	isLink := func(t *testing.T, dir, rel, target string) {
		t.Helper()
		want := filepath.Join(StateDir(dir), target)
		got, err := os.Readlink(link(dir, rel))
		if err != nil || got != want {
			t.Fatalf("%s: link to %q, %v; want a link to %s", rel, got, err, want)
		}
		if fi, err := os.Stat(link(dir, rel)); err != nil || !fi.IsDir() {
			t.Fatalf("%s: the link does not lead to a directory: %v", rel, err)
		}
	}
	isDir := func(t *testing.T, dir, rel string) {
		t.Helper()
		if fi, err := os.Lstat(link(dir, rel)); err != nil || !fi.IsDir() {
			t.Fatalf("%s: old directory replaced: %v %v", rel, fi, err)
		}
	}
	write := func(t *testing.T, path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("fresh data dir", func(t *testing.T) {
		dir := t.TempDir()
		if err := linkState(dir); err != nil {
			t.Fatal(err)
		}
		isLink(t, dir, criSandboxesDir, "cri-sandboxes")
		isLink(t, dir, taskWorkDir, "task-work")
		// What is written through a link lands in the state dir; the rest
		// of the CRI plugin's directory (containers' status files) stays
		// on disk.
		write(t, filepath.Join(link(dir, criSandboxesDir), "s1", "hosts"))
		if _, err := os.Stat(filepath.Join(StateDir(dir), "cri-sandboxes", "s1", "hosts")); err != nil {
			t.Errorf("sandbox file not in the state dir: %v", err)
		}
		write(t, filepath.Join(link(dir, taskWorkDir), "k8s.io", "t1", "f"))
		if _, err := os.Stat(filepath.Join(StateDir(dir), "task-work", "k8s.io", "t1", "f")); err != nil {
			t.Errorf("task work file not in the state dir: %v", err)
		}
		if fi, err := os.Lstat(filepath.Dir(link(dir, criSandboxesDir))); err != nil || !fi.IsDir() {
			t.Errorf("the CRI plugin's directory is not a plain directory: %v %v", fi, err)
		}
		if err := linkState(dir); err != nil {
			t.Fatalf("second start: %v", err)
		}
		isLink(t, dir, criSandboxesDir, "cri-sandboxes")
		isLink(t, dir, taskWorkDir, "task-work")
	})

	t.Run("after a reboot: the state dir is empty", func(t *testing.T) {
		dir := t.TempDir()
		if err := linkState(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(StateDir(dir)); err != nil {
			t.Fatal(err)
		}
		if err := linkState(dir); err != nil {
			t.Fatal(err)
		}
		isLink(t, dir, criSandboxesDir, "cri-sandboxes")
		isLink(t, dir, taskWorkDir, "task-work")
	})

	t.Run("old directories of running pods are kept", func(t *testing.T) {
		dir := t.TempDir()
		hosts := filepath.Join(link(dir, criSandboxesDir), "s1", "hosts")
		write(t, hosts)
		work := filepath.Join(link(dir, taskWorkDir), "k8s.io", "t1", "f")
		write(t, work)
		if err := linkState(dir); err != nil {
			t.Fatal(err)
		}
		isDir(t, dir, criSandboxesDir)
		isDir(t, dir, taskWorkDir)
		for _, f := range []string{hosts, work} {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("a running pod's file is gone: %v", err)
			}
		}
	})

	t.Run("old directories without pods become links", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(link(dir, criSandboxesDir), 0o700); err != nil {
			t.Fatal(err)
		}
		// containerd keeps a namespace's directory after its last task.
		if err := os.MkdirAll(filepath.Join(link(dir, taskWorkDir), "k8s.io"), 0o711); err != nil {
			t.Fatal(err)
		}
		if err := linkState(dir); err != nil {
			t.Fatal(err)
		}
		isLink(t, dir, criSandboxesDir, "cri-sandboxes")
		isLink(t, dir, taskWorkDir, "task-work")
	})

	t.Run("a file in the way is an error", func(t *testing.T) {
		dir := t.TempDir()
		write(t, link(dir, taskWorkDir))
		if err := linkState(dir); err == nil {
			t.Fatal("no error for a file where the task work directory goes")
		}
	})
}
