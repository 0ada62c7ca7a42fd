package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/apiserver/authn"
	"github.com/skiff-sh/skiff/internal/serviceaccount"
	"github.com/skiff-sh/skiff/internal/storage"
)

// Keys of the user's extra info for service account tokens, as upstream.
const (
	extraPodName      = "authentication.kubernetes.io/pod-name"
	extraPodUID       = "authentication.kubernetes.io/pod-uid"
	extraNodeName     = "authentication.kubernetes.io/node-name"
	extraNodeUID      = "authentication.kubernetes.io/node-uid"
	extraCredentialID = "authentication.kubernetes.io/credential-id"
)

// boundPodGrace is how long after its deletionTimestamp a pod being
// deleted still backs its tokens, as upstream's validator allows.
const boundPodGrace = 60 * time.Second

// errTokenInvalidated is the (logged, never shown) reason a well-signed
// token names an object that is gone or replaced.
var errTokenInvalidated = errors.New("service account token has been invalidated")

// authenticateServiceAccount verifies a bound service account token: its
// signature, issuer, audience and lifetime, then that the service account
// and the object it is bound to still exist with the same uid. Every
// failure is authn.ErrUnauthenticated (401); store errors are returned.
func (s *Server) authenticateServiceAccount(ctx context.Context, token string, audiences []string) (*authn.User, error) {
	iss := s.cfg.ServiceAccountIssuer
	if iss == nil {
		return nil, authn.ErrUnauthenticated
	}
	if audiences == nil {
		audiences = iss.APIAudiences()
	}
	c, err := iss.VerifyFor(token, audiences)
	if err != nil {
		s.log.Debug("service account token rejected", "err", err)
		return nil, authn.ErrUnauthenticated
	}
	k := c.Kubernetes
	sa := &corev1.ServiceAccount{}
	if err := s.lookupBound(ctx, "serviceaccounts", k.Namespace, k.ServiceAccount, sa); err != nil {
		return nil, err
	}
	u := &authn.User{
		Name:   c.Subject,
		UID:    string(sa.UID),
		Groups: append(serviceaccount.Groups(k.Namespace), authn.AllAuthenticated),
		Extra:  map[string][]string{extraCredentialID: {"JTI=" + c.ID}},
	}
	switch {
	case k.Pod != nil:
		pod := &corev1.Pod{}
		if err := s.lookupBound(ctx, "pods", k.Namespace, *k.Pod, pod); err != nil {
			return nil, err
		}
		if pod.DeletionTimestamp != nil && pod.DeletionTimestamp.Add(boundPodGrace).Before(s.now()) {
			s.log.Debug("service account token rejected", "err", errTokenInvalidated, "pod", k.Namespace+"/"+k.Pod.Name)
			return nil, authn.ErrUnauthenticated
		}
		u.Extra[extraPodName] = []string{k.Pod.Name}
		u.Extra[extraPodUID] = []string{k.Pod.UID}
		if k.Node != nil {
			u.Extra[extraNodeName] = []string{k.Node.Name}
			u.Extra[extraNodeUID] = []string{k.Node.UID}
		}
	case k.Secret != nil:
		if err := s.lookupBound(ctx, "secrets", k.Namespace, *k.Secret, &corev1.Secret{}); err != nil {
			return nil, err
		}
	case k.Node != nil:
		if err := s.lookupBound(ctx, "nodes", "", *k.Node, &corev1.Node{}); err != nil {
			return nil, err
		}
		u.Extra[extraNodeName] = []string{k.Node.Name}
		u.Extra[extraNodeUID] = []string{k.Node.UID}
	}
	return u, nil
}

// lookupBound reads the core object ref names into out and checks its
// uid; a missing or replaced object is authn.ErrUnauthenticated.
func (s *Server) lookupBound(ctx context.Context, resource, namespace string, ref serviceaccount.Ref, out runtime.Object) error {
	res := s.resources[corev1.SchemeGroupVersion.WithResource(resource)]
	if res == nil {
		return authn.ErrUnauthenticated
	}
	err := getCachedOrLive(ctx, res, res.key(namespace, ref.Name), out)
	if storage.IsNotFound(err) {
		s.log.Debug("service account token rejected", "err", errTokenInvalidated, resource, namespace+"/"+ref.Name)
		return authn.ErrUnauthenticated
	}
	if err != nil {
		return fmt.Errorf("look up %s %s/%s: %w", resource, namespace, ref.Name, err)
	}
	uid, err := objectUID(out)
	if err != nil {
		return err
	}
	if uid != ref.UID {
		// The cache may hold an older incarnation: ask etcd before refusing.
		if err := res.store.Get(ctx, res.key(namespace, ref.Name), storage.GetOptions{}, out); err != nil {
			if storage.IsNotFound(err) {
				return authn.ErrUnauthenticated
			}
			return err
		}
		if uid, _ = objectUID(out); uid != ref.UID {
			s.log.Debug("service account token rejected", "err", errTokenInvalidated, resource, namespace+"/"+ref.Name)
			return authn.ErrUnauthenticated
		}
	}
	return nil
}

func objectUID(obj runtime.Object) (string, error) {
	switch o := obj.(type) {
	case *corev1.ServiceAccount:
		return string(o.UID), nil
	case *corev1.Pod:
		return string(o.UID), nil
	case *corev1.Secret:
		return string(o.UID), nil
	case *corev1.Node:
		return string(o.UID), nil
	}
	return "", fmt.Errorf("unexpected bound object %T", obj)
}

// serveOpenIDConfiguration serves the issuer's OIDC discovery document
// to authenticated users (upstream also grants it through the
// system:service-account-issuer-discovery role; RBAC is not enforced here).
func (s *Server) serveOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	s.serveIssuerDoc(w, r, "application/json", (*serviceaccount.Issuer).OpenIDConfiguration)
}

// serveJWKS serves the public keys that verify service account tokens.
func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	s.serveIssuerDoc(w, r, "application/jwk-set+json", (*serviceaccount.Issuer).JWKS)
}

func (s *Server) serveIssuerDoc(w http.ResponseWriter, r *http.Request, contentType string, doc func(*serviceaccount.Issuer) ([]byte, error)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.methodNotAllowed(w, r)
		return
	}
	if s.cfg.ServiceAccountIssuer == nil {
		s.serveNotFound(w, r)
		return
	}
	b, err := doc(s.cfg.ServiceAccountIssuer)
	if err != nil {
		s.writeError(w, r, err, schema.GroupResource{}, "")
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
