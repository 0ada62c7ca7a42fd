package node

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// newDataDir returns a data dir with the busybox image waiting in
// agent/images for the agent-start import.
func newDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bb := framework.BusyboxTarball(t)
	dst := images.Dir(dir)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(bb, filepath.Join(dst, "busybox.tar")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRuntimeStarts(t *testing.T) {
	framework.RequireRoot(t)
	dir := newDataDir(t)
	rt := framework.StartRuntime(t, dir, nil)
	ctx := context.Background()
	v, err := rt.CRI.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runtime %s %s, CRI %s", v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)
	for _, ref := range []string{images.PauseImage, framework.BusyboxImage} {
		img, err := rt.CRI.ImageStatus(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if img == nil {
			t.Errorf("image %s not present after agent start", ref)
			continue
		}
		t.Logf("image %s: %s, %d bytes", ref, img.Id, img.Size)
	}

	// `skiff image import` reaches the running agent's containerd.
	const ref = "skiff.sh/test/cli-import:1"
	script := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "cli.tar")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	if err := images.WriteFromFile(f, images.Image{Ref: ref}, script, "/hello"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", dir, tarball).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+ref) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	if img, err := rt.CRI.ImageStatus(ctx, ref); err != nil || img == nil {
		t.Errorf("image %s after skiff image import: %v, %v", ref, img, err)
	}
}
