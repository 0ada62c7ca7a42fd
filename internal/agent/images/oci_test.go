package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// layout is a parsed OCI-layout tarball, its digests checked.
type layout struct {
	index    Index
	manifest Manifest
	config   ImageConfig
	entries  []*tar.Header // the layer's
	contents map[string]string
}

// readLayout parses an OCI-layout tarball and checks every digest and size
// against the blob it names.
func readLayout(t *testing.T, b []byte) layout {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = data
	}
	if got := string(files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q", got)
	}
	blob := func(d Descriptor) []byte {
		t.Helper()
		data, ok := files[blobPath(d.Digest)]
		if !ok {
			t.Fatalf("blob %s missing", d.Digest)
		}
		if digest(data) != d.Digest || int64(len(data)) != d.Size {
			t.Fatalf("blob %s: digest %s size %d, descriptor says size %d", d.Digest, digest(data), len(data), d.Size)
		}
		return data
	}
	var l layout
	mustJSON(t, files["index.json"], &l.index)
	if len(l.index.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(l.index.Manifests))
	}
	md := l.index.Manifests[0]
	if md.MediaType != MediaTypeManifest {
		t.Errorf("manifest media type %q", md.MediaType)
	}
	mustJSON(t, blob(md), &l.manifest)
	if l.manifest.Config.MediaType != MediaTypeConfig || len(l.manifest.Layers) != 1 || l.manifest.Layers[0].MediaType != MediaTypeLayer {
		t.Fatalf("manifest %+v", l.manifest)
	}
	mustJSON(t, blob(l.manifest.Config), &l.config)
	gz, err := gzip.NewReader(bytes.NewReader(blob(l.manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.config.RootFS.DiffIDs) != 1 || l.config.RootFS.DiffIDs[0] != digest(layer) {
		t.Errorf("diff IDs %v, uncompressed layer is %s", l.config.RootFS.DiffIDs, digest(layer))
	}
	l.contents = map[string]string{}
	lr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(lr)
		l.entries = append(l.entries, h)
		l.contents[h.Name] = string(data)
	}
	return l
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

func TestWriteFromDir(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"bin", "etc/empty"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "tool"), []byte("#!tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "bin", "tool"), filepath.Join(root, "bin", "tool2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/bin/tool", filepath.Join(root, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	img := Image{Ref: "skiff.sh/test/tool:1", Architecture: "amd64", Config: RuntimeConfig{Cmd: []string{"sh"}}}
	var first, second bytes.Buffer
	if err := WriteFromDir(&first, img, root); err != nil {
		t.Fatal(err)
	}
	if err := WriteFromDir(&second, img, root); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Error("two writes of the same tree differ")
	}
	l := readLayout(t, first.Bytes())

	md := l.index.Manifests[0]
	if md.Annotations[AnnotationRefName] != img.Ref {
		t.Errorf("ref name annotation %q, want %q", md.Annotations[AnnotationRefName], img.Ref)
	}
	if md.Platform == nil || md.Platform.Architecture != "amd64" || md.Platform.OS != "linux" {
		t.Errorf("platform %+v", md.Platform)
	}
	if l.config.OS != "linux" || !slices.Equal(l.config.Config.Cmd, []string{"sh"}) || !slices.Equal(l.config.Config.Env, []string{DefaultPath}) {
		t.Errorf("image config %+v", l.config)
	}
	var names []string
	for _, h := range l.entries {
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: uid %d gid %d mtime %s, want 0 0 epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
	}
	want := []string{"bin/", "bin/sh", "bin/tool", "bin/tool2", "etc/", "etc/empty/"}
	if !slices.Equal(names, want) {
		t.Errorf("layer entries %v, want %v", names, want)
	}
	for _, h := range l.entries {
		switch h.Name {
		case "bin/sh":
			if h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/tool" {
				t.Errorf("bin/sh: type %c link %q", h.Typeflag, h.Linkname)
			}
		case "bin/tool":
			if h.Mode&0o777 != 0o755 || l.contents[h.Name] != "#!tool" {
				t.Errorf("bin/tool: mode %o content %q", h.Mode, l.contents[h.Name])
			}
		case "bin/tool2":
			if h.Typeflag != tar.TypeLink || h.Linkname != "bin/tool" {
				t.Errorf("bin/tool2: type %c link %q, want a hard link to bin/tool", h.Typeflag, h.Linkname)
			}
		}
	}
}

func TestWriteFromFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(src, []byte("ELF"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	img := Image{Ref: PauseImage, Config: RuntimeConfig{Entrypoint: []string{"/usr/bin/pause"}, Env: []string{"PATH=/usr/bin"}}}
	if err := WriteFromFile(&b, img, src, "/usr/bin/pause"); err != nil {
		t.Fatal(err)
	}
	l := readLayout(t, b.Bytes())
	var names []string
	for _, h := range l.entries {
		names = append(names, h.Name)
	}
	if want := []string{"usr/", "usr/bin/", "usr/bin/pause"}; !slices.Equal(names, want) {
		t.Errorf("layer entries %v, want %v", names, want)
	}
	if h := l.entries[2]; h.Mode != 0o755 || l.contents[h.Name] != "ELF" {
		t.Errorf("pause: mode %o content %q", h.Mode, l.contents[h.Name])
	}
	if !slices.Equal(l.config.Config.Env, []string{"PATH=/usr/bin"}) {
		t.Errorf("env %v: an image's own PATH must stay", l.config.Config.Env)
	}
}

func TestWriteRejects(t *testing.T) {
	if err := WriteFromFile(io.Discard, Image{}, "/nonexistent", "x"); err == nil {
		t.Error("empty reference accepted")
	}
	if err := WriteFromFile(io.Discard, Image{Ref: "a/b:1"}, t.TempDir(), "x"); err == nil {
		t.Error("a directory accepted as the file")
	}
}

// TestPauseTarball builds the pause image from this source tree, once, and
// finds it cached the second time.
func TestPauseTarball(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the pause command")
	}
	if SourceDir() == "" {
		t.Skip("not in skiff's source tree")
	}
	dir := t.TempDir()
	path, err := PauseTarball(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l := readLayout(t, b)
	if !slices.Equal(l.config.Config.Entrypoint, []string{"/pause"}) || len(l.contents["pause"]) < 1000 {
		t.Errorf("pause image: entrypoint %v, /pause of %d bytes", l.config.Config.Entrypoint, len(l.contents["pause"]))
	}
	if !slices.Contains(l.config.Config.Env, "GOMAXPROCS=1") || !hasPath(l.config.Config.Env) {
		t.Errorf("pause image env %v, want PATH and GOMAXPROCS=1", l.config.Config.Env)
	}
	// The mount points runc would otherwise create in each container's
	// writable layer: directories as directories, files as empty files.
	kinds := map[string]byte{}
	for _, h := range l.entries {
		kinds[h.Name] = h.Typeflag
	}
	for _, want := range []string{"dev/", "proc/", "sys/", "etc/resolv.conf", "etc/hosts", "etc/hostname", "var/run/secrets/kubernetes.io/serviceaccount/"} {
		flag := byte(tar.TypeReg)
		if strings.HasSuffix(want, "/") {
			flag = tar.TypeDir
		}
		if got, ok := kinds[want]; !ok || got != flag {
			t.Errorf("pause layer: %s missing or of type %q", want, got)
		}
	}
	st, _ := os.Stat(path)
	again, err := PauseTarball(t.Context(), dir)
	if err != nil || again != path {
		t.Fatalf("second call: %s, %v", again, err)
	}
	if st2, _ := os.Stat(again); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("the cached pause image was rebuilt")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 1 {
		t.Errorf("cache holds %v, want only the tarball", m)
	}
}
