package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
)

// prepareExternal waits until the external runtime (--container-runtime-
// endpoint) answers CRI, then imports <data-dir>/agent/images/*.tar into it
// if it is a containerd (the import speaks containerd's API on the same
// socket); for another runtime (CRI-O) the import is skipped with a log
// line. The runtime's own config decides the sandbox (pause) image and
// where it reads CNI configs; the agent neither builds nor imports pause
// for it.
func (a *Agent) prepareExternal(ctx context.Context) error {
	log := a.cfg.Logger.With("endpoint", a.endpoint)
	name, version, err := waitRuntime(ctx, a.endpoint, log)
	if err != nil {
		return err
	}
	log.Info("external container runtime answers", "runtime", name, "version", version)
	dir := images.Dir(a.cfg.DataDir)
	tars, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	switch {
	case len(tars) == 0:
	case name != "containerd":
		log.Warn("image auto-import skipped: the external runtime is not containerd", "runtime", name, "dir", dir, "files", len(tars))
	default:
		if err := (images.Importer{Address: a.endpoint}).ImportDir(ctx, dir, log); err != nil && ctx.Err() == nil {
			// The runtime is not the agent's to fail for: pods whose
			// images are missing report it themselves.
			log.Warn("image auto-import into the external containerd failed", "dir", dir, "err", err)
		}
	}
	return nil
}

// waitRuntime polls the runtime's CRI Version until it answers or ctx ends,
// and returns its name and version.
func waitRuntime(ctx context.Context, endpoint string, log *slog.Logger) (name, version string, err error) {
	start := time.Now()
	logged := false
	for {
		if name, version, err = runtimeVersion(ctx, endpoint); err == nil {
			return name, version, nil
		}
		if !logged && time.Since(start) > 2*time.Second {
			log.Info("waiting for the external container runtime", "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func runtimeVersion(ctx context.Context, endpoint string) (string, string, error) {
	c, err := cri.Dial(endpoint, 2*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	v, err := c.Version(ctx)
	if err != nil {
		return "", "", fmt.Errorf("runtime version: %w", err)
	}
	return v.RuntimeName, v.RuntimeVersion, nil
}
