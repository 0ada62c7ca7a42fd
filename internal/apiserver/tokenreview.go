package apiserver

import (
	"context"
	"errors"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/apiserver/authn"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/serviceaccount"
	"github.com/skiff-sh/skiff/internal/storage"
)

// tokenReviewResource is authentication.k8s.io/v1 TokenReview: a
// create-only review answering whether a bearer token (service account or
// bootstrap) is valid for the given audiences, and whose it is.
func (s *Server) tokenReviewResource() *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: authenticationv1.SchemeGroupVersion.WithResource("tokenreviews"),
		Kind:                 "TokenReview", SingularName: "tokenreview",
		Strategy: &registry.BaseStrategy{},
		New:      func() runtime.Object { return &authenticationv1.TokenReview{} },
		NewList:  func() runtime.Object { return &authenticationv1.TokenReview{} },
		Review:   s.reviewToken,
	}
}

func (s *Server) reviewToken(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
	tr := obj.(*authenticationv1.TokenReview).DeepCopy()
	if tr.Spec.Token == "" {
		return nil, apierrors.NewBadRequest("token is required for TokenReview in authentication")
	}
	auds := tr.Spec.Audiences
	if len(auds) == 0 {
		auds = s.cfg.ServiceAccountIssuer.APIAudiences()
	}
	var u *authn.User
	var err error
	if serviceaccount.LooksLikeJWT(tr.Spec.Token) {
		u, err = s.authenticateServiceAccount(ctx, tr.Spec.Token, auds)
	} else {
		a := authn.BootstrapAuthenticator{Get: s.getSecret, Now: s.now, IsNotFound: storage.IsNotFound}
		u, err = a.Authenticate(ctx, tr.Spec.Token)
	}
	tr.Status = authenticationv1.TokenReviewStatus{}
	switch {
	case errors.Is(err, authn.ErrUnauthenticated) || err == nil && u == nil:
		tr.Status.Error = "invalid bearer token"
	case err != nil:
		return nil, apierrors.NewInternalError(err)
	default:
		tr.Status.Authenticated = true
		tr.Status.Audiences = auds
		tr.Status.User = authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: append([]string(nil), u.Groups...)}
		if len(u.Extra) > 0 {
			tr.Status.User.Extra = map[string]authenticationv1.ExtraValue{}
			for k, v := range u.Extra {
				tr.Status.User.Extra[k] = append(authenticationv1.ExtraValue(nil), v...)
			}
		}
	}
	return tr, nil
}
