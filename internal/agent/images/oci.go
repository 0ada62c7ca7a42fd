package images

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// OCI media types and annotations (github.com/opencontainers/image-spec;
// the few structs below stand in for its package, which skiff does not
// depend on).
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	// AnnotationRefName names the image in index.json; ctr import takes a
	// full reference from it.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// annotationContainerdName is what containerd's importer reads first.
	annotationContainerdName = "io.containerd.image.name"
)

// Descriptor points at a blob.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform is a manifest's OS and architecture.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Index is index.json.
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// Manifest is an image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// ImageConfig is the image configuration blob.
type ImageConfig struct {
	Architecture string        `json:"architecture"`
	OS           string        `json:"os"`
	Config       RuntimeConfig `json:"config"`
	RootFS       RootFS        `json:"rootfs"`
	History      []History     `json:"history,omitempty"`
}

// RuntimeConfig is what a container of the image runs by default.
type RuntimeConfig struct {
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Env        []string `json:"Env,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	User       string   `json:"User,omitempty"`
}

// RootFS lists the layers' uncompressed digests.
type RootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

// History describes how a layer was made.
type History struct {
	CreatedBy string `json:"created_by,omitempty"`
}

// Image describes the image to write.
type Image struct {
	// Ref is the full reference, e.g. "skiff.sh/pause:1".
	Ref string
	// Architecture defaults to the running one; OS is always linux.
	Architecture string
	Config       RuntimeConfig
}

// DefaultPath is the PATH images get when their Env does not set one.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// epoch is every file's modification time: same input, same digest.
var epoch = time.Unix(0, 0)

// WriteFromDir writes an OCI-layout tarball of one layer holding the tree
// under root (owned by root:root in the image) to w.
func WriteFromDir(w io.Writer, img Image, root string) error {
	return write(w, img, func(tw *tar.Writer) error { return addTree(tw, root) })
}

// WriteFromFile writes an OCI-layout tarball of one layer holding the file
// src at path dst (mode 0755; parent directories are added).
func WriteFromFile(w io.Writer, img Image, src, dst string) error {
	return write(w, img, func(tw *tar.Writer) error { return addFile(tw, src, dst) })
}

func write(w io.Writer, img Image, fill func(*tar.Writer) error) error {
	if img.Ref == "" {
		return errors.New("oci image: empty reference")
	}
	if img.Architecture == "" {
		img.Architecture = runtime.GOARCH
	}
	layer, err := os.CreateTemp("", "skiff-layer-*.tar.gz")
	if err != nil {
		return fmt.Errorf("oci image %s: %w", img.Ref, err)
	}
	defer os.Remove(layer.Name())
	defer layer.Close()
	diffID, layerDesc, err := writeLayer(layer, fill)
	if err != nil {
		return fmt.Errorf("oci image %s: layer: %w", img.Ref, err)
	}
	cfg := ImageConfig{
		Architecture: img.Architecture,
		OS:           "linux",
		Config:       img.Config,
		RootFS:       RootFS{Type: "layers", DiffIDs: []string{diffID}},
		History:      []History{{CreatedBy: "skiff"}},
	}
	if !hasPath(cfg.Config.Env) {
		cfg.Config.Env = append([]string{DefaultPath}, cfg.Config.Env...)
	}
	cfgJSON, cfgDesc := jsonBlob(MediaTypeConfig, cfg)
	manJSON, manDesc := jsonBlob(MediaTypeManifest, Manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        cfgDesc,
		Layers:        []Descriptor{layerDesc},
	})
	manDesc.Platform = &Platform{Architecture: img.Architecture, OS: "linux"}
	manDesc.Annotations = map[string]string{AnnotationRefName: img.Ref, annotationContainerdName: img.Ref}
	indexJSON, _ := jsonBlob(MediaTypeIndex, Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{manDesc}})

	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", indexJSON},
		{blobPath(cfgDesc.Digest), cfgJSON},
		{blobPath(manDesc.Digest), manJSON},
	}
	for _, f := range files {
		if err := writeTarFile(tw, f.name, f.data); err != nil {
			return fmt.Errorf("oci image %s: %w", img.Ref, err)
		}
	}
	if _, err := layer.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blobPath(layerDesc.Digest), Size: layerDesc.Size, Mode: 0o644, ModTime: epoch}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, layer); err != nil {
		return fmt.Errorf("oci image %s: %w", img.Ref, err)
	}
	return tw.Close()
}

func hasPath(env []string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return true
		}
	}
	return false
}

func blobPath(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

func jsonBlob(mediaType string, v any) ([]byte, Descriptor) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own structs of strings
	}
	return b, Descriptor{MediaType: mediaType, Digest: digest(b), Size: int64(len(b))}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func writeTarFile(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644, ModTime: epoch}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// countingWriter counts bytes.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// writeLayer writes a gzip'd tar made by fill to f and returns the digest of
// the uncompressed tar (the diff ID) and the descriptor of the blob.
func writeLayer(f io.Writer, fill func(*tar.Writer) error) (string, Descriptor, error) {
	blobHash, diffHash := sha256.New(), sha256.New()
	var size countingWriter
	gz, err := gzip.NewWriterLevel(io.MultiWriter(f, blobHash, &size), gzip.BestSpeed)
	if err != nil {
		return "", Descriptor{}, err
	}
	tw := tar.NewWriter(io.MultiWriter(gz, diffHash))
	if err := fill(tw); err != nil {
		return "", Descriptor{}, err
	}
	if err := tw.Close(); err != nil {
		return "", Descriptor{}, err
	}
	if err := gz.Close(); err != nil {
		return "", Descriptor{}, err
	}
	return "sha256:" + hex.EncodeToString(diffHash.Sum(nil)),
		Descriptor{MediaType: MediaTypeLayer, Digest: "sha256:" + hex.EncodeToString(blobHash.Sum(nil)), Size: size.n}, nil
}

// addTree adds the tree under root, in lexical order. Hard links within the
// tree stay hard links; devices, sockets and pipes are left out.
func addTree(tw *tar.Writer, root string) error {
	links := map[uint64]string{} // inode → first path in the layer
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var target string
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if target, err = os.Readlink(path); err != nil {
				return err
			}
		case info.IsDir(), info.Mode().IsRegular():
		default:
			return nil
		}
		h, err := tar.FileInfoHeader(info, target)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime, h.AccessTime, h.ChangeTime = epoch, time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		if st, ok := info.Sys().(*syscall.Stat_t); ok && info.Mode().IsRegular() && st.Nlink > 1 {
			if first, seen := links[st.Ino]; seen {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(h)
			}
			links[st.Ino] = h.Name
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
}

// addSkeleton adds empty directories (names ending in "/", mode 0755) and
// empty files (mode 0644), in the order given: parents first.
func addSkeleton(tw *tar.Writer, names []string) error {
	for _, n := range names {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, ModTime: epoch}
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	return nil
}

// addFile adds src as dst with its parent directories.
func addFile(tw *tar.Writer, src, dst string) error {
	dst = strings.Trim(filepath.ToSlash(filepath.Clean(dst)), "/")
	if dst == "" || dst == "." {
		return fmt.Errorf("image path %q: not a file path", dst)
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	parts := strings.Split(dst, "/")
	for i := 1; i < len(parts); i++ {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.Join(parts[:i], "/") + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dst, Size: info.Size(), Mode: 0o755, ModTime: epoch}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
