package containerd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Config{DataDir: "/var/lib/skiff", SandboxImage: "skiff.sh/pause:1"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }, "--data-dir is empty"},
		{"relative data dir", func(c *Config) { c.DataDir = "data" }, "absolute"},
		{"long data dir", func(c *Config) { c.DataDir = "/" + strings.Repeat("d", 80) }, "shorter --data-dir"},
		{"no sandbox image", func(c *Config) { c.SandboxImage = "" }, "sandbox image"},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, "log level"},
		{"negative timeout", func(c *Config) { c.StopTimeout = -time.Second }, "stop timeout"},
		{"inverted back-off", func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second }, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRenderConfig(t *testing.T) {
	c := Config{DataDir: "/data/node 1", SandboxImage: "skiff.sh/pause:1"}
	c.setDefaults()
	b, err := renderConfig(&c, false)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"version = 2\n",
		`root = "/data/node 1/agent/containerd/root"`,
		`state = "/data/node 1/agent/containerd/state"`,
		`address = "/data/node 1/agent/containerd/containerd.sock"`,
		`sandbox_image = "skiff.sh/pause:1"`,
		`bin_dir = "/usr/lib/cni"`,
		`conf_dir = "/data/node 1/agent/cni/net.d"`,
		"SystemdCgroup = false",
		`snapshotter = "overlayfs"`,
		`level = "warn"`,
		"oom_score = -999",
		"restrict_oom_score_adj = false",
		`config_path = "/data/node 1/agent/containerd/certs.d"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	b, err = renderConfig(&c, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); strings.Contains(got, "oom_score = ") || !strings.Contains(got, "restrict_oom_score_adj = true") {
		t.Errorf("without CAP_SYS_RESOURCE the config must restrict OOM scores:\n%s", got)
	}
}

// TestConfigParses has containerd itself read the generated config, when
// it is installed.
func TestConfigParses(t *testing.T) {
	bin, err := exec.LookPath(DefaultBinary)
	if err != nil {
		t.Skip("containerd not installed")
	}
	c := Config{DataDir: t.TempDir(), SandboxImage: "skiff.sh/pause:1"}
	c.setDefaults()
	b, err := renderConfig(&c, !canLowerOOMScore())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--config", path, "config", "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd config dump: %v\n%s", err, out)
	}
	for _, want := range []string{
		`sandbox_image = "skiff.sh/pause:1"`,
		"SystemdCgroup = false",
		`address = "` + c.Socket() + `"`,
		`conf_dir = "` + c.CNIConfDir + `"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("containerd's view of the config lacks %q", want)
		}
	}
}
