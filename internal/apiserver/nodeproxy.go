package apiserver

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/proxy"

	"github.com/skiff-sh/skiff/internal/storage"
)

// serveNodeProxy is nodes/{name}/proxy/{path}: the request goes on to
// https://<node address>:<kubelet port>/{path} with its method, query and
// body, with the API server's kubelet client certificate, as
// kube-apiserver's node proxy does (`kubectl get --raw
// /api/v1/nodes/N/proxy/stats/summary`, metrics-server without direct
// node access).
func (s *Server) serveNodeProxy(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		s.methodNotAllowed(w, r)
		return
	}
	// A port may follow the name (N:10250), as upstream allows; the
	// kubelet's own endpoint is used either way.
	name, _, _ := strings.Cut(info.Name, ":")
	node := &corev1.Node{}
	if err := res.store.Get(r.Context(), res.key("", name), storage.GetOptions{}, node); err != nil {
		s.writeError(w, r, err, res.gr, name)
		return
	}
	host, err := s.kubeletHost(r, name)
	if err != nil {
		s.writeError(w, r, err, res.gr, name)
		return
	}
	// The path after .../proxy, from the raw path so a trailing slash
	// stays.
	marker := "/" + info.Name + "/proxy"
	i := strings.Index(r.URL.Path, marker)
	if i < 0 {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("invalid node proxy path %q", r.URL.Path)), res.gr, name)
		return
	}
	rest := r.URL.Path[i+len(marker):]
	if rest == "" {
		rest = "/"
	}
	loc := &url.URL{Scheme: "https", Host: host, Path: rest, RawQuery: r.URL.RawQuery}
	// The client's credentials are for the API server, not the kubelet.
	r = r.Clone(r.Context())
	r.Header.Del("Authorization")
	h := proxy.NewUpgradeAwareHandler(loc, s.kubeletTransport, false, false, kubeletResponder{s, name, host})
	h.ServeHTTP(w, r)
}
