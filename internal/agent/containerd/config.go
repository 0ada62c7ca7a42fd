package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultBinary       = "containerd"
	DefaultCNIBinDir    = "/usr/lib/cni" // Debian's containernetworking-plugins
	DefaultLogLevel     = "warn"
	DefaultStartTimeout = 30 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
)

// maxSocketPath is the longest unix socket path Linux takes (sun_path is
// 108 bytes with the NUL), less containerd's ".ttrpc" suffix.
const maxSocketPath = 107 - len(".ttrpc")

// Config configures one supervised containerd.
type Config struct {
	// DataDir is skiff's data directory; containerd lives in
	// <DataDir>/agent/containerd.
	DataDir string
	// SandboxImage is the CRI plugin's pause image; it must be present
	// locally (Prepare imports it), nothing is pulled.
	SandboxImage string
	// Binary is the containerd executable (looked up in PATH).
	Binary string
	// CNIBinDir holds the CNI plugins; CNIConfDir the network configs
	// (default <DataDir>/agent/cni/net.d).
	CNIBinDir, CNIConfDir string
	// StateTmpfs puts containerd's state directory (and runc's, under it)
	// on a tmpfs of its own, mounted at the first start and kept across
	// agent and containerd restarts; UnmountState removes it.
	StateTmpfs bool
	// ShimMountNamespaces starts each shim in a mount namespace of its own,
	// a slave of the agent's (see shimns.go), so runc parses a short mount
	// table; the agent directory and /run/netns become shared mounts.
	ShimMountNamespaces bool
	// LogLevel is containerd's log level (default warn).
	LogLevel string
	// StartTimeout bounds the wait for a started containerd to answer CRI;
	// one that does not is killed and restarted.
	StartTimeout time.Duration
	// StopTimeout is how long containerd may take to exit after SIGTERM
	// before it gets SIGKILL.
	StopTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a restart; it doubles
	// with each crash and resets after a run longer than MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Prepare, if set, runs once after containerd first answers and before
	// Ready is closed, with the CRI endpoint (image imports). An error stops
	// containerd and ends Run.
	Prepare func(ctx context.Context, endpoint string) error
	Logger  *slog.Logger
}

// Validate rejects an unusable config; it does not fill defaults.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("containerd: --data-dir is empty")
	}
	if !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("containerd: --data-dir %q: must be an absolute path", c.DataDir)
	}
	if c.SandboxImage == "" {
		return errors.New("containerd: no sandbox image")
	}
	if s := c.Socket(); len(s) > maxSocketPath {
		return fmt.Errorf("containerd: socket path %s is %d bytes, longer than %d: use a shorter --data-dir", s, len(s), maxSocketPath)
	}
	switch c.LogLevel {
	case "", "trace", "debug", "info", "warn", "error", "fatal", "panic":
	default:
		return fmt.Errorf("containerd: log level %q: want trace, debug, info, warn, error, fatal or panic", c.LogLevel)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"start timeout", c.StartTimeout}, {"stop timeout", c.StopTimeout}, {"min back-off", c.MinBackoff}, {"max back-off", c.MaxBackoff}} {
		if d.v < 0 {
			return fmt.Errorf("containerd: %s %s: must not be negative", d.name, d.v)
		}
	}
	if c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff {
		return fmt.Errorf("containerd: min back-off %s exceeds max back-off %s", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Binary == "" {
		c.Binary = DefaultBinary
	}
	if c.CNIBinDir == "" {
		c.CNIBinDir = DefaultCNIBinDir
	}
	if c.CNIConfDir == "" {
		c.CNIConfDir = filepath.Join(c.DataDir, "agent", "cni", "net.d")
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// NoHostPortHandler is the CRI runtime handler for pods without hostPort:
// runc as the default handler, with the network config in
// NoHostPortCNIConfDir (the kubelet's, without portmap).
const NoHostPortHandler = "runc-nohostport"

// NoHostPortCNIConfDir is the network config directory of
// NoHostPortHandler, next to CNIConfDir.
func (c Config) NoHostPortCNIConfDir() string { return c.CNIConfDir + "-nohostport" }

// Dir is containerd's directory, <DataDir>/agent/containerd.
func (c *Config) Dir() string { return Dir(c.DataDir) }

// Socket is containerd's gRPC socket (CRI and containerd's own API).
func (c *Config) Socket() string { return Socket(c.DataDir) }

// Endpoint is the CRI endpoint, unix://<Socket>.
func (c *Config) Endpoint() string { return "unix://" + c.Socket() }

// ConfigPath is the generated config file.
func (c *Config) ConfigPath() string { return filepath.Join(c.Dir(), "config.toml") }

// LogPath is where containerd's output goes.
func (c *Config) LogPath() string { return filepath.Join(c.Dir(), "containerd.log") }

func (c *Config) pidPath() string { return filepath.Join(c.Dir(), "containerd.pid") }

// Dir is the containerd directory of a skiff data dir.
func Dir(dataDir string) string { return filepath.Join(dataDir, "agent", "containerd") }

// rootDir is containerd's root (persistent data: content, snapshots,
// metadata).
func rootDir(dataDir string) string { return filepath.Join(Dir(dataDir), "root") }

// Socket is the containerd socket of a skiff data dir; `skiff image import`
// uses it to reach a running agent's containerd.
func Socket(dataDir string) string { return filepath.Join(Dir(dataDir), "containerd.sock") }

// RegistryDir is containerd's registry config_path: a directory per
// registry host ("127.0.0.1:5000", "docker.io") holding a hosts.toml.
func (c *Config) RegistryDir() string { return RegistryDir(c.DataDir) }

// RegistryDir is the registry hosts directory of the agent in dataDir.
func RegistryDir(dataDir string) string { return filepath.Join(Dir(dataDir), "certs.d") }
