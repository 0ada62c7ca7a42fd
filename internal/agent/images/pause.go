package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PauseImage is the sandbox image skiff builds; its tag follows the version
// in test/images/pause/main.go (and names the cached tarball, so a new tag
// is rebuilt).
const PauseImage = "skiff.sh/pause:2"

// pauseImageSpec is the pause image's reference and configuration. GOMAXPROCS
// set in its environment spares every pause process the Go runtime's look
// at its cgroup's CPU limit (/proc/self/cgroup, the mount table and the
// limit files) at start; one thread suffices to sleep and reap.
var pauseImageSpec = Image{Ref: PauseImage, Config: RuntimeConfig{Entrypoint: []string{"/pause"}, Env: []string{DefaultPath, "GOMAXPROCS=1"}}}

// pauseSkeleton is what the pause image holds besides /pause: the mount
// points runc and the kubelet mount on in a container (a sandbox's /dev,
// /proc, /sys and /etc/resolv.conf; a container's /etc/hosts,
// /etc/hostname and service account token). Present in the image layer,
// runc mounts over them; missing, runc creates each one in the container's
// writable layer on disk, 17 inodes per pod that its removal frees again.
// Debian-based images carry them too.
var pauseSkeleton = []string{
	"dev/", "proc/", "sys/", "etc/", "etc/hostname", "etc/hosts", "etc/resolv.conf",
	"var/", "var/run/", "var/run/secrets/", "var/run/secrets/kubernetes.io/", "var/run/secrets/kubernetes.io/serviceaccount/",
}

// pausePackage is the pause command's package in skiff's module.
const (
	module       = "github.com/skiff-sh/skiff"
	pausePackage = module + "/test/images/pause"
	// PauseBinaryName is a prebuilt pause next to the skiff executable
	// (`make build` puts bin/skiff-pause beside bin/skiff).
	PauseBinaryName = "skiff-pause"
)

// ErrNoPauseSource means there is neither a prebuilt pause binary nor
// skiff's source tree and a Go toolchain to build one.
var ErrNoPauseSource = errors.New("no pause binary: put " + PauseBinaryName + " next to the skiff executable, or run from skiff's source tree with Go installed (or set SKIFF_SOURCE_DIR)")

// BuildPause builds the pause command static (CGO_ENABLED=0) from skiff's
// source tree at srcDir into out.
func BuildPause(ctx context.Context, srcDir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pausePackage)
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build pause: %w: %s", err, bytes.TrimSpace(b))
	}
	return nil
}

// PauseTarball returns the path of the pause image's OCI tarball in
// cacheDir, writing it if missing: from a prebuilt skiff-pause next to the
// running executable, else built from source (SKIFF_SOURCE_DIR, or the
// module around the working directory or the executable).
func PauseTarball(ctx context.Context, cacheDir string) (string, error) {
	tag := PauseImage[strings.LastIndex(PauseImage, ":")+1:]
	path := filepath.Join(cacheDir, "pause-"+tag+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return "", fmt.Errorf("pause image: %w", err)
	}
	bin, cleanup, err := pauseBinary(ctx, cacheDir)
	if err != nil {
		return "", fmt.Errorf("pause image: %w", err)
	}
	defer cleanup()
	if err := writeFileAtomic(path, func(f *os.File) error {
		return write(f, pauseImageSpec, func(tw *tar.Writer) error {
			if err := addSkeleton(tw, pauseSkeleton); err != nil {
				return err
			}
			return addFile(tw, bin, "pause")
		})
	}); err != nil {
		return "", fmt.Errorf("pause image: %w", err)
	}
	return path, nil
}

func pauseBinary(ctx context.Context, tmpDir string) (string, func(), error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), PauseBinaryName)
		if _, err := os.Stat(p); err == nil {
			return p, func() {}, nil
		}
	}
	src := SourceDir()
	if src == "" {
		return "", nil, ErrNoPauseSource
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "", nil, fmt.Errorf("%w (source at %s, but: %v)", ErrNoPauseSource, src, err)
	}
	out := filepath.Join(tmpDir, fmt.Sprintf("pause.%d", os.Getpid()))
	if err := BuildPause(ctx, src, out); err != nil {
		return "", nil, err
	}
	return out, func() { os.Remove(out) }, nil
}

// SourceDir finds skiff's source tree: $SKIFF_SOURCE_DIR, else the module
// around the working directory, else around the executable (bin/skiff of a
// checkout). It returns "" if there is none.
func SourceDir() string {
	if d := os.Getenv("SKIFF_SOURCE_DIR"); d != "" {
		return d
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, d := range starts {
		for ; ; d = filepath.Dir(d) {
			if isSkiffModule(filepath.Join(d, "go.mod")) {
				return d
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return ""
}

func isSkiffModule(goMod string) bool {
	f, err := os.Open(goMod)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) == 2 && f[0] == "module" {
			return f[1] == module
		}
	}
	return false
}

// writeFileAtomic writes path through a temporary file in its directory, so
// a reader never sees half a file and concurrent writers do not mix.
func writeFileAtomic(path string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
