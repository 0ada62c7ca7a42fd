package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/apiserver/authn"
	"github.com/skiff-sh/skiff/internal/serviceaccount"
	"github.com/skiff-sh/skiff/internal/storage"
)

// authenticate returns the request's user: the verified client
// certificate's subject (the certificate path is unchanged), else a
// service account JWT (authn_jwt.go) or a bootstrap token in
// "Authorization: Bearer". A nil user with a nil error
// means no credentials at all.
func (s *Server) authenticate(r *http.Request) (*authn.User, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return authn.FromCertificate(r.TLS.VerifiedChains[0][0]), nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return nil, authn.ErrUnauthenticated
	}
	if serviceaccount.LooksLikeJWT(strings.TrimSpace(token)) {
		return s.authenticateServiceAccount(r.Context(), strings.TrimSpace(token), nil)
	}
	a := authn.BootstrapAuthenticator{Get: s.getSecret, Now: s.now, IsNotFound: storage.IsNotFound}
	return a.Authenticate(r.Context(), strings.TrimSpace(token))
}

// getSecret reads a Secret from the API server's own store.
func (s *Server) getSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	res := s.resources[corev1.SchemeGroupVersion.WithResource("secrets")]
	if res == nil {
		return nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
	}
	sec := &corev1.Secret{}
	if err := res.store.Get(ctx, res.key(namespace, name), storage.GetOptions{}, sec); err != nil {
		return nil, err
	}
	return sec, nil
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	s.writeStatus(w, r, &metav1.Status{Code: http.StatusUnauthorized, Reason: metav1.StatusReasonUnauthorized, Message: "Unauthorized"})
}

// authenticateToken is withAuthentication's path for requests without a
// client certificate: a valid bootstrap token passes with its user in the
// context, anything else is 401.
func (s *Server) authenticateToken(w http.ResponseWriter, r *http.Request, next http.Handler) {
	u, err := s.authenticate(r)
	if err != nil && !errors.Is(err, authn.ErrUnauthenticated) {
		s.log.Error("authenticate bearer token", "err", err)
	}
	if err != nil || u == nil {
		s.unauthorized(w, r)
		return
	}
	if !s.authorizeBootstrap(w, r, u) {
		return
	}
	next.ServeHTTP(w, r.WithContext(authn.WithUser(r.Context(), u)))
}

// bootstrapAllowed are the verbs a bootstrap token may use, all on
// certificates.k8s.io certificatesigningrequests: what upstream's
// system:node-bootstrapper ClusterRole grants.
var bootstrapAllowed = map[string]bool{"get": true, "list": true, "watch": true, "create": true}

// authorizeBootstrap stands in for RBAC until it exists: bootstrap
// identities may only read and create CertificateSigningRequests. A denial
// is written as upstream's 403 and false returned.
func (s *Server) authorizeBootstrap(w http.ResponseWriter, r *http.Request, u *authn.User) bool {
	if !u.InGroup("system:bootstrappers") || u.InGroup(authn.SystemMasters) {
		return true
	}
	info, ok := parseResourcePath(r)
	if !ok {
		verb := strings.ToLower(r.Method)
		if verb == "head" {
			verb = "get"
		}
		s.writeError(w, r, apierrors.NewForbidden(schema.GroupResource{}, "",
			fmt.Errorf("User %q cannot %s path %q", u.Name, verb, r.URL.Path)), schema.GroupResource{}, "")
		return false
	}
	if info.Group == "certificates.k8s.io" && info.Resource == "certificatesigningrequests" &&
		info.Subresource == "" && bootstrapAllowed[info.Verb] {
		return true
	}
	gr := schema.GroupResource{Group: info.Group, Resource: info.Resource}
	resource := info.Resource
	if info.Subresource != "" {
		resource += "/" + info.Subresource
	}
	scope := "at the cluster scope"
	if info.Namespace != "" {
		scope = fmt.Sprintf("in the namespace %q", info.Namespace)
	}
	err := fmt.Errorf("User %q cannot %s resource %q in API group %q %s", u.Name, info.Verb, resource, info.Group, scope)
	s.writeError(w, r, apierrors.NewForbidden(gr, info.Name, err), gr, info.Name)
	return false
}

// serveCACerts serves the cluster CA bundle to anyone, as k3s's /cacerts:
// joining agents fetch it without trusting the server yet and check it
// against the hash in their token.
func (s *Server) serveCACerts(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.methodNotAllowed(w, r)
		return
	}
	if len(s.cfg.CABundle) == 0 {
		s.serveNotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(s.cfg.CABundle)
}
