package apiserver

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/serviceaccount"
	"github.com/skiff-sh/skiff/internal/storage"
)

var tokenRequestGVK = authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")

// Token lifetimes a TokenRequest may ask for, as upstream's validation.
const (
	defaultTokenSeconds int64 = 3600
	minTokenSeconds     int64 = 600
	maxTokenSeconds     int64 = math.MaxUint32
)

// serveTokenRequest answers POST .../serviceaccounts/{name}/token: a
// TokenRequest in, the same with status.token and expirationTimestamp out
// (201), as upstream's TokenREST. Nothing is stored.
func (s *Server) serveTokenRequest(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	if info.Verb != "create" {
		s.methodNotAllowed(w, r)
		return
	}
	o, _, err := s.decodeWrite(w, r, tokenRequestGVK, &authenticationv1.TokenRequest{})
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	out, err := s.issueToken(r.Context(), info.Namespace, info.Name, o.(*authenticationv1.TokenRequest))
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	s.writeObject(w, r, http.StatusCreated, out)
}

// validateTokenRequest defaults and checks the spec.
func validateTokenRequest(tr *authenticationv1.TokenRequest) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec", "expirationSeconds")
	if tr.Spec.ExpirationSeconds == nil {
		secs := defaultTokenSeconds
		tr.Spec.ExpirationSeconds = &secs
	}
	switch secs := *tr.Spec.ExpirationSeconds; {
	case secs < minTokenSeconds:
		errs = append(errs, field.Invalid(p, secs, "may not specify a duration less than 10 minutes"))
	case secs > maxTokenSeconds:
		errs = append(errs, field.TooLong(p, secs, int(maxTokenSeconds)))
	}
	return errs
}

// issueToken signs a token for namespace/name as tr asks: the service
// account must exist, a bound object must exist (with the given uid) and,
// for a pod, run as that service account.
func (s *Server) issueToken(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	iss := s.cfg.ServiceAccountIssuer
	if iss == nil {
		return nil, apierrors.NewServiceUnavailable("service account token issuing is not configured")
	}
	if tr.Name != "" && tr.Name != name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", tr.Name, name))
	}
	if tr.Namespace != "" && tr.Namespace != namespace {
		return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if errs := validateTokenRequest(tr); len(errs) > 0 {
		return nil, apierrors.NewInvalid(tokenRequestGVK.GroupKind(), name, errs)
	}
	sa := &corev1.ServiceAccount{}
	if err := s.getCore(ctx, "serviceaccounts", namespace, name, sa); err != nil {
		return nil, err
	}
	req := serviceaccount.Request{
		Namespace: namespace, ServiceAccount: serviceaccount.Ref{Name: sa.Name, UID: string(sa.UID)},
		Audiences: tr.Spec.Audiences, Lifetime: time.Duration(*tr.Spec.ExpirationSeconds) * time.Second,
	}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
		var uid string
		switch {
		case gvk.Group == "" && gvk.Kind == "Pod":
			pod := &corev1.Pod{}
			if err := s.getCore(ctx, "pods", namespace, ref.Name, pod); err != nil {
				return nil, err
			}
			if pod.Spec.ServiceAccountName != name {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with serviceaccount %q", name, pod.Spec.ServiceAccountName))
			}
			uid = string(pod.UID)
			req.Pod = &serviceaccount.Ref{Name: pod.Name, UID: uid}
			if pod.Spec.NodeName != "" {
				node := &corev1.Node{}
				if err := s.getCore(ctx, "nodes", "", pod.Spec.NodeName, node); err == nil {
					req.Node = &serviceaccount.Ref{Name: node.Name, UID: string(node.UID)}
				}
			}
		case gvk.Group == "" && gvk.Kind == "Secret":
			sec := &corev1.Secret{}
			if err := s.getCore(ctx, "secrets", namespace, ref.Name, sec); err != nil {
				return nil, err
			}
			uid = string(sec.UID)
			req.Secret = &serviceaccount.Ref{Name: sec.Name, UID: uid}
		case gvk.Group == "" && gvk.Kind == "Node":
			node := &corev1.Node{}
			if err := s.getCore(ctx, "nodes", "", ref.Name, node); err != nil {
				return nil, err
			}
			uid = string(node.UID)
			req.Node = &serviceaccount.Ref{Name: node.Name, UID: uid}
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s", gvk.String()))
		}
		if ref.UID != "" && string(ref.UID) != uid {
			return nil, apierrors.NewConflict(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, ref.Name,
				fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", ref.UID, uid))
		}
	}
	tok, claims, err := iss.Issue(req)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	out := tr.DeepCopy()
	if len(out.Spec.Audiences) == 0 {
		out.Spec.Audiences = []string(claims.Audience)
	}
	out.Name, out.Namespace = name, namespace
	out.CreationTimestamp = metav1.Time{Time: time.Unix(claims.IssuedAt, 0)}
	// The lifetime asked for, also when the token's is extended: clients
	// refresh on that schedule.
	exp := time.Unix(claims.IssuedAt, 0).Add(time.Duration(*out.Spec.ExpirationSeconds) * time.Second)
	out.Status = authenticationv1.TokenRequestStatus{Token: tok, ExpirationTimestamp: metav1.Time{Time: exp}}
	return out, nil
}

// getCore reads a core/v1 object; absent is upstream's 404 naming it.
func (s *Server) getCore(ctx context.Context, resource, namespace, name string, out runtime.Object) error {
	res := s.resources[corev1.SchemeGroupVersion.WithResource(resource)]
	if res == nil {
		return apierrors.NewNotFound(corev1.Resource(resource), name)
	}
	err := getCachedOrLive(ctx, res, res.key(namespace, name), out)
	if storage.IsNotFound(err) {
		return apierrors.NewNotFound(corev1.Resource(resource), name)
	}
	return err
}
