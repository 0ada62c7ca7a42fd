package kubelet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fileProjection is one file of a configMap, secret, downwardAPI or
// projected volume.
type fileProjection struct {
	data []byte
	mode os.FileMode
}

// dataDirName is the symlink to the current payload directory, as upstream's
// atomic writer names it.
const dataDirName = "..data"

// writeAtomic makes dir hold exactly payload (relative paths → files) the
// way upstream's AtomicWriter does: the files live in a hidden timestamped
// directory, `..data` links to it and each top-level name links into
// `..data`, so an update is one rename of `..data` and a reader never sees a
// mix of old and new files. It reports whether anything changed.
func writeAtomic(dir string, payload map[string]fileProjection, now time.Time) (bool, error) {
	for p := range payload {
		if err := validPayloadPath(p); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	dataLink := filepath.Join(dir, dataDirName)
	old, err := os.Readlink(dataLink)
	if err != nil && !os.IsNotExist(err) {
		return false, err
	}
	if old != "" && sameFiles(filepath.Join(dir, old), payload) {
		return false, nil
	}
	ts := now.UTC().Format("..2006_01_02_15_04_05.") + fmt.Sprint(now.Nanosecond())
	tsDir, err := os.MkdirTemp(dir, ts)
	if err != nil {
		return false, err
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return false, err
	}
	for p, f := range payload {
		path := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			return false, err
		}
		if err := os.Chmod(path, f.mode); err != nil { // not subject to umask
			return false, err
		}
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return false, err
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return false, err
	}
	// The user-visible names: one link per top-level path element.
	top := map[string]bool{}
	for p := range payload {
		top[strings.SplitN(p, "/", 2)[0]] = true
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataDirName, name), link); err != nil {
			return false, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") {
			if n != dataDirName && n != filepath.Base(tsDir) {
				_ = os.RemoveAll(filepath.Join(dir, n))
			}
			continue
		}
		if !top[n] {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
	return true, nil
}

// sameFiles reports whether dir holds exactly payload.
func sameFiles(dir string, payload map[string]fileProjection) bool {
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		f, ok := payload[rel]
		if !ok {
			return os.ErrNotExist
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm() != f.mode.Perm() {
			return os.ErrNotExist
		}
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(b, f.data) {
			return os.ErrNotExist
		}
		n++
		return nil
	})
	return err == nil && n == len(payload)
}

// validPayloadPath rejects what upstream's validatePath does: absolute
// paths, "..", names starting with "..".
func validPayloadPath(p string) error {
	if p == "" || filepath.IsAbs(p) || len(p) > 4096 {
		return fmt.Errorf("invalid path %q", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." || el == "" {
			return fmt.Errorf("invalid path %q: must not contain '..' or empty elements", p)
		}
	}
	if strings.HasPrefix(p, "..") {
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	return nil
}
