package framework

import (
	"debug/elf"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/skiff-sh/skiff/internal/agent/images"
)

// NginxImage is the reference of the image NginxTarball builds: the name a
// pod's `image: nginx` normalizes to, so the walkthrough needs no registry.
const NginxImage = "docker.io/library/nginx:latest"

// NginxPage is the start of the default index page of the nginx image.
const NginxPage = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>"

// NginxBigFile is a file of NginxBigSize zero bytes the image serves at
// /NginxBigFile, for throughput figures.
const (
	NginxBigFile = "big.bin"
	NginxBigSize = 64 << 20
)

// nginxDebs are the packages of the image: nginx, its configuration and
// the libraries its binary links (checked against the ELF's DT_NEEDED when
// the image is built), plus busybox for `cat` and `sh` in kubectl exec.
var nginxDebs = []string{"nginx", "nginx-common", "libc6", "libcrypt1", "libpcre2-8-0", "libssl3", "zlib1g", "busybox-static"}

var nginxOnce struct {
	sync.Mutex
	path string
}

// NginxTarball returns an OCI-layout tarball of an nginx image made from
// Debian packages the way the official image is laid out: the logs are
// symlinks to /dev/stdout and /dev/stderr, the command is
// `nginx -g 'daemon off;'`, users www-data and nginx exist. It is built once
// per test process into the cache directory.
func NginxTarball(t testing.TB) string {
	t.Helper()
	nginxOnce.Lock()
	defer nginxOnce.Unlock()
	if nginxOnce.path != "" {
		return nginxOnce.path
	}
	root, err := os.MkdirTemp("", "skiff-nginx-root-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	for _, name := range nginxDebs {
		run(t, "dpkg-deb", "-x", debPackage(t, name), root)
	}
	checkLibraries(t, root, "/usr/sbin/nginx")
	for _, applet := range []string{"sh", "cat", "ls", "echo", "sleep", "ps"} {
		p := filepath.Join(root, "bin", applet)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.Symlink("/bin/busybox", p); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tmp", "proc", "sys", "dev", "run", "root", "var/lib/nginx", "var/log/nginx", "var/www/html",
		"etc/nginx/sites-enabled", "etc/nginx/modules-enabled"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"var/log/nginx/access.log":        "/dev/stdout",
		"var/log/nginx/error.log":         "/dev/stderr",
		"etc/nginx/sites-enabled/default": "/etc/nginx/sites-available/default",
	}
	for p, target := range links {
		_ = os.Remove(filepath.Join(root, p))
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n" +
			"nginx:x:101:101:nginx user:/nonexistent:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":                       "root:x:0:\nwww-data:x:33:\nnginx:x:101:\nnogroup:x:65534:\n",
		"etc/nsswitch.conf":               "passwd: files\ngroup: files\nhosts: files dns\n",
		"var/www/html/index.html":         NginxPage + "\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>Served by skiff's test image.</p>\n</body>\n</html>\n",
		"usr/share/nginx/html/index.html": NginxPage + "\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n",
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A big file for throughput figures (zeros: the layer stays small).
	if err := os.WriteFile(filepath.Join(root, "var/www/html", NginxBigFile), make([]byte, NginxBigSize), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/lintian", "usr/share/info"} {
		_ = os.RemoveAll(filepath.Join(root, d))
	}
	f, err := os.CreateTemp(cacheDir(t), "nginx-*.tar.tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	img := images.Image{Ref: NginxImage, Config: images.RuntimeConfig{
		Cmd: []string{"nginx", "-g", "daemon off;"},
		Env: []string{images.DefaultPath, "NGINX_VERSION=debian"},
	}}
	if err := images.WriteFromDir(f, img, root); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cacheDir(t), "nginx.tar")
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
	nginxOnce.path = path
	return path
}

// checkLibraries fails the test if a library bin links (recursively) is
// not in the root's library directories: the fixed package list is out of
// date then.
func checkLibraries(t testing.TB, root, bin string) {
	t.Helper()
	dirs := []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib", "usr/lib"}
	seen := map[string]bool{}
	var walk func(string)
	walk = func(path string) {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatalf("nginx image: %v", err)
		}
		defer f.Close()
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatalf("nginx image: %s: %v", path, err)
		}
		for _, lib := range libs {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			found := ""
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(root, d, lib)); err == nil {
					found = filepath.Join(root, d, lib)
					break
				}
			}
			if found == "" {
				t.Fatalf("nginx image: %s needs %s, which none of %v provides; add its package", bin, lib, nginxDebs)
			}
			walk(found)
		}
	}
	walk(filepath.Join(root, bin))
}
