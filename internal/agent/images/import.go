package images

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// CRINamespace is the containerd namespace the CRI plugin serves.
const CRINamespace = "k8s.io"

// Importer imports image tarballs into one containerd with ctr.
type Importer struct {
	// Address is containerd's socket (a path or unix:// URL).
	Address string
	// Ctr is the ctr executable (default "ctr", from PATH).
	Ctr string
}

// Import imports an OCI-layout or docker-archive tarball into the CRI
// namespace and unpacks it for the overlayfs snapshotter, so CRI can run it
// at once. It returns the imported references as ctr prints them.
func (im Importer) Import(ctx context.Context, file string) ([]string, error) {
	ctr := im.Ctr
	if ctr == "" {
		ctr = "ctr"
	}
	addr := strings.TrimPrefix(im.Address, "unix://")
	cmd := exec.CommandContext(ctx, ctr, "--address", addr, "--namespace", CRINamespace,
		"images", "import", "--snapshotter", "overlayfs", file)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("import image %s: %w: %s", file, err, strings.TrimSpace(errOut.String()))
	}
	// ctr prints "unpacking <ref> (<digest>)...done" per image.
	var refs []string
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "unpacking" {
			refs = append(refs, f[1])
		}
	}
	return refs, nil
}

// ImportDir imports every *.tar in dir, in name order; a missing dir is
// empty. It stops at the first failure.
func (im Importer) ImportDir(ctx context.Context, dir string, log *slog.Logger) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		start := time.Now()
		refs, err := im.Import(ctx, f)
		if err != nil {
			return err
		}
		log.Info("imported images", "file", f, "images", refs, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Preparer returns the containerd supervisor's Prepare step for an agent:
// build (once, cached in <dataDir>/agent/cache) and import the pause image,
// then import <dataDir>/agent/images/*.tar.
func Preparer(dataDir string, log *slog.Logger) func(ctx context.Context, endpoint string) error {
	return func(ctx context.Context, endpoint string) error {
		im := Importer{Address: endpoint}
		start := time.Now()
		pause, err := PauseTarball(ctx, CacheDir(dataDir))
		if err != nil {
			return err
		}
		if _, err := im.Import(ctx, pause); err != nil {
			return err
		}
		log.Info("pause image ready", "image", PauseImage, "took", time.Since(start).Round(time.Millisecond))
		return im.ImportDir(ctx, Dir(dataDir), log)
	}
}

// Dir is where an agent finds tarballs to import at start.
func Dir(dataDir string) string { return filepath.Join(dataDir, "agent", "images") }

// CacheDir holds images skiff built itself.
func CacheDir(dataDir string) string { return filepath.Join(dataDir, "agent", "cache") }
