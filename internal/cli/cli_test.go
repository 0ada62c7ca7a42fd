package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		wantStdout string
		wantStderr string
	}{
		{nil, 2, "", "Usage: skiff"},
		{[]string{"nope"}, 2, "", `unknown command "nope"`},
		{[]string{"version"}, 0, "skiff v", ""},
		{[]string{"server", "--no-such-flag"}, 2, "", "flag provided but not defined"},
		{[]string{"server", "--https-listen-port", "0", "--data-dir", "/tmp/x"}, 1, "", "--https-listen-port 0"},
		{[]string{"server", "--service-cidr", "bogus"}, 1, "", "--service-cidr"},
		{[]string{"agent"}, 1, "", "--kubeconfig is required"},
		{[]string{"agent", "--kubeconfig", "/nonexistent.kubeconfig"}, 1, "", "--kubeconfig /nonexistent.kubeconfig"},
		{[]string{"dns"}, 1, "", "--kubeconfig is required"},
		{[]string{"dns", "--kubeconfig", "/nonexistent.kubeconfig"}, 1, "", "--kubeconfig /nonexistent.kubeconfig"},
		{[]string{"dns", "--ttl", "bogus"}, 2, "", "invalid value"},
		{[]string{"image"}, 2, "", "Usage: skiff image import"},
		{[]string{"image", "import"}, 2, "", "Usage: skiff image import"},
		{[]string{"image", "import", "--data-dir", "/tmp/x", "/nonexistent.tar"}, 1, "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.wantStdout)
			}
			if !strings.Contains(errb.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), tt.wantStderr)
			}
		})
	}
}

func TestListFlag(t *testing.T) {
	var v []string
	if err := (listFlag{&v}).Set("https://a:2379, https://b:2379,,"); err != nil {
		t.Fatal(err)
	}
	if len(v) != 2 || v[0] != "https://a:2379" || v[1] != "https://b:2379" {
		t.Fatalf("got %q", v)
	}
}

// TestImageImportQueues: with no containerd running, the tarball waits in
// the data dir for the agent's start.
func TestImageImportQueues(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(t.TempDir(), "app.tar")
	if err := os.WriteFile(file, []byte("tarball"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"image", "import", "--data-dir", dir, file}, &out, &errb); code != 0 {
		t.Fatalf("exit code %d: %s", code, errb.String())
	}
	queued := filepath.Join(dir, "agent", "images", "app.tar")
	if b, err := os.ReadFile(queued); err != nil || string(b) != "tarball" {
		t.Errorf("queued copy: %q, %v", b, err)
	}
	if !strings.Contains(out.String(), "queued "+queued) {
		t.Errorf("stdout %q does not say where the file was queued", out.String())
	}
}
