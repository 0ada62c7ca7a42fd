package framework

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Registry is a read-only OCI distribution server on 127.0.0.1 serving one
// image from an OCI-layout tarball, optionally behind basic auth. It is
// enough for containerd to resolve and pull the image.
type Registry struct {
	// Host is "127.0.0.1:PORT".
	Host       string
	repo, tag  string
	user, pass string
	manifest   string // digest
	mediaType  string
	blobs      map[string][]byte
	srv        *http.Server

	mu       sync.Mutex
	requests []RegistryRequest
}

// RegistryRequest is one request the registry served.
type RegistryRequest struct {
	At     time.Time
	Method string
	Path   string
}

// StartRegistry serves the image in tarball as repo:tag. With user set,
// every request needs basic auth with user and pass.
func StartRegistry(t testing.TB, tarball, repo, tag, user, pass string) *Registry {
	t.Helper()
	r := &Registry{repo: repo, tag: tag, user: user, pass: pass, blobs: map[string][]byte{}}
	if err := r.load(tarball); err != nil {
		t.Fatalf("registry: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Host = ln.Addr().String()
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(ln)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// Ref is the image's full reference.
func (r *Registry) Ref() string { return r.Host + "/" + r.repo + ":" + r.tag }

// Requests lists the requests served so far.
func (r *Registry) Requests() []RegistryRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RegistryRequest(nil), r.requests...)
}

func (r *Registry) load(tarball string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	var index []byte
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch {
		case name == "index.json":
			index = b
		case strings.HasPrefix(name, "blobs/sha256/"):
			r.blobs["sha256:"+strings.TrimPrefix(name, "blobs/sha256/")] = b
		}
	}
	var idx struct {
		Manifests []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(index, &idx); err != nil || len(idx.Manifests) == 0 {
		return fmt.Errorf("%s: no manifest in index.json: %v", tarball, err)
	}
	r.manifest, r.mediaType = idx.Manifests[0].Digest, idx.Manifests[0].MediaType
	if _, ok := r.blobs[r.manifest]; !ok {
		return fmt.Errorf("%s: manifest %s missing", tarball, r.manifest)
	}
	return nil
}

func regError(w http.ResponseWriter, code int, name, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": name, "message": msg}}})
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests = append(r.requests, RegistryRequest{At: time.Now(), Method: req.Method, Path: req.URL.Path})
	r.mu.Unlock()
	if r.user != "" {
		u, p, ok := req.BasicAuth()
		if !ok || u != r.user || p != r.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="skiff-test-registry"`)
			regError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "read-only registry")
		return
	}
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == "" || req.URL.Path == "/v2" {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.Write([]byte("{}"))
		return
	}
	var name, kind, ref string
	for _, k := range []string{"/manifests/", "/blobs/"} {
		if i := strings.LastIndex(p, k); i > 0 {
			name, kind, ref = p[:i], strings.Trim(k, "/"), p[i+len(k):]
			break
		}
	}
	if name != r.repo {
		regError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry")
		return
	}
	var body []byte
	var digest, ctype string
	switch kind {
	case "manifests":
		if ref != r.tag && ref != r.manifest {
			regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
			return
		}
		digest, body, ctype = r.manifest, r.blobs[r.manifest], r.mediaType
	case "blobs":
		b, ok := r.blobs[ref]
		if !ok {
			regError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry")
			return
		}
		sum := sha256.Sum256(b)
		digest, body, ctype = "sha256:"+hex.EncodeToString(sum[:]), b, "application/octet-stream"
	default:
		regError(w, http.StatusNotFound, "UNSUPPORTED", "unknown endpoint")
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if req.Method == http.MethodHead {
		return
	}
	w.Write(body)
}
