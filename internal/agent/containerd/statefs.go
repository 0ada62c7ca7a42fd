package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// StateDir is containerd's state directory in a skiff data dir: task
// bundles, sandbox shm, FIFOs and (with the runc root under it) runc's
// container state.
func StateDir(dataDir string) string { return filepath.Join(Dir(dataDir), "state") }

// PodFilesDir is where the kubelet keeps pods' API-object volumes and
// termination-message files (kubelet.Config.VolatileDir): in containerd's
// state dir, a tmpfs when Config.StateTmpfs, so that they need no mount of
// their own (each mount is a line more in every mount table runc parses).
func PodFilesDir(dataDir string) string { return filepath.Join(StateDir(dataDir), "skiff-pods") }

// runcRoot is runc's state root, under containerd's state so that it is on
// the same tmpfs (runc's default, /run/containerd/runc, is shared by every
// containerd of the machine and on disk where /run is not a tmpfs).
func runcRoot(dataDir string) string { return filepath.Join(StateDir(dataDir), "runc") }

// isTmpfs reports whether dir is on a tmpfs.
func isTmpfs(dir string) (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false, err
	}
	return st.Type == unix.TMPFS_MAGIC, nil
}

// isMountPoint reports whether dir is on another file system than its
// parent.
func isMountPoint(dir string) (bool, error) {
	var st, parent syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return false, err
	}
	if err := syscall.Stat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// mountStateTmpfs puts containerd's state directory on a tmpfs, as
// /run/containerd is on a usual host: every container start creates and
// every stop removes a few dozen files there (bundle, FIFOs, runc state),
// which on a disk file system cost inode allocations (an ext4 without a
// journal scans past every inode freed in the last minute) for data that
// must not outlive the machine anyway. A tmpfs already there (an earlier
// agent run, whose shims and containers still use it), or a state dir that
// is on a tmpfs anyway, is kept. So is a state dir on disk that holds
// tasks (an agent from before the tmpfs, whose containers still run): a
// tmpfs on it would hide them from containerd; the tmpfs comes at the
// first start without them. It reports whether the state is on a tmpfs.
func mountStateTmpfs(dataDir string) (bool, error) {
	dir := StateDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("containerd: state dir: %w", err)
	}
	if ok, err := isTmpfs(dir); err != nil {
		return false, fmt.Errorf("containerd: state dir: %w", err)
	} else if ok {
		return true, nil
	}
	if hasTasks(dir) {
		return false, nil
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0700"); err != nil {
		return false, fmt.Errorf("containerd: mount a tmpfs on the state dir %s: %w", dir, err)
	}
	return true, nil
}

// hasTasks reports whether a containerd state dir holds task bundles
// (io.containerd.runtime.v2.task/<namespace>/<id>).
func hasTasks(stateDir string) bool {
	m, _ := filepath.Glob(filepath.Join(stateDir, "io.containerd.runtime.v2.task", "*", "*"))
	return len(m) > 0
}

// criSandboxesDir is the CRI plugin's directory of sandbox files in
// containerd's root: per sandbox its hostname, hosts and resolv.conf.
var criSandboxesDir = filepath.Join("io.containerd.grpc.v1.cri", "sandboxes")

// taskWorkDir is the runtime v2 plugin's directory of task work
// directories in containerd's root (<namespace>/<task id>, linked from each
// task's bundle as "work"): runc's shim keeps nothing there but what a
// checkpoint would, and containerd removes a task's at its delete (and at
// its start, those of tasks without a bundle, as after a reboot).
const taskWorkDir = "io.containerd.runtime.v2.task"

// stateLinks are the directories of containerd's root that are symbolic
// links into the state tmpfs (stateLink): what they hold is made at a
// sandbox's or task's start, removed when it goes, and of no use once its
// processes are gone, so a reboot (a new tmpfs) loses nothing. Each has
// the depth at which an old real directory holds entries of running pods.
// The CRI plugin's containers' status files, which tell exit codes after a
// reboot, stay on disk.
var stateLinks = []struct {
	rel, target string
	depth       int
	mode        os.FileMode
}{
	{criSandboxesDir, "cri-sandboxes", 1, 0o700},
	// containerd makes its own with 0711.
	{taskWorkDir, "task-work", 2, 0o711},
}

// linkState makes every stateLinks directory a link into the state tmpfs.
func linkState(dataDir string) error {
	for _, l := range stateLinks {
		if err := stateLink(dataDir, l.rel, l.target, l.depth, l.mode); err != nil {
			return err
		}
	}
	return nil
}

// stateLink makes rel, a directory in containerd's root, a symbolic link
// to target (made with mode) in the state tmpfs, so that the files a pod
// start creates there (and its removal deletes) cost no disk inodes: on an
// ext4 without a journal every inode allocation scans past the inodes
// freed in the last half minute, which a churn of pods fills. A real
// directory that holds entries depth levels down (an agent from before the
// link, whose pods still run) is kept until it holds none. The link's
// target is made at every start: after a reboot the tmpfs is new, and
// containerd would not start on a dangling link.
func stateLink(dataDir, rel, target string, depth int, mode os.FileMode) error {
	link := filepath.Join(rootDir(dataDir), rel)
	target = filepath.Join(StateDir(dataDir), target)
	if err := os.MkdirAll(target, mode); err != nil {
		return fmt.Errorf("containerd: link %s into the state dir: %w", rel, err)
	}
	fi, err := os.Lstat(link)
	switch {
	case err == nil && fi.Mode()&os.ModeSymlink != 0:
		if cur, err := os.Readlink(link); err == nil && cur == target {
			return nil
		}
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("containerd: link %s into the state dir: %w", rel, err)
		}
	case err == nil && fi.IsDir():
		pattern := link + strings.Repeat(string(filepath.Separator)+"*", depth)
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return nil
		}
		if err := os.RemoveAll(link); err != nil {
			return fmt.Errorf("containerd: link %s into the state dir: %w", rel, err)
		}
	case err == nil:
		return fmt.Errorf("containerd: link %s into the state dir: %s is neither a directory nor a link", rel, link)
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("containerd: link %s into the state dir: %w", rel, err)
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o711); err != nil {
		return fmt.Errorf("containerd: link %s into the state dir: %w", rel, err)
	}
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("containerd: link %s into the state dir: %w", rel, err)
	}
	return nil
}

// runcRootFor is runc's root for a state dir: runcRoot on a tmpfs state,
// else "" (runc's default, where an agent from before the tmpfs had its
// containers' state).
func runcRootFor(dataDir string) string {
	if ok, err := isTmpfs(StateDir(dataDir)); err == nil && ok {
		return runcRoot(dataDir)
	}
	return ""
}

// UnmountState removes the tmpfs under a data dir's containerd state and
// the agent directory's bind mount (and whatever is mounted below them), so
// that the data dir can be removed. Run it only once no containerd or shim
// of the data dir runs. What is not a mount point is left alone.
func UnmountState(dataDir string) error {
	if err := unmountStateTmpfs(dataDir); err != nil {
		return err
	}
	return unmountAgentDir(dataDir)
}

func unmountStateTmpfs(dataDir string) error {
	dir := StateDir(dataDir)
	tmp, err := isTmpfs(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("containerd: state dir: %w", err)
	}
	if mp, err := isMountPoint(dir); err != nil {
		return fmt.Errorf("containerd: state dir: %w", err)
	} else if !tmp || !mp {
		return nil
	}
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("containerd: unmount the state dir %s: %w", dir, err)
	}
	return nil
}
