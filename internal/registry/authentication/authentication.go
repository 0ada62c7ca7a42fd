package authentication

import (
	"context"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/apiserver/authn"
	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns authentication.k8s.io/v1 SelfSubjectReview.
func Resources() []*registry.Resource {
	return []*registry.Resource{{
		GroupVersionResource: authenticationv1.SchemeGroupVersion.WithResource("selfsubjectreviews"),
		Kind:                 "SelfSubjectReview", SingularName: "selfsubjectreview",
		Strategy: &registry.BaseStrategy{},
		New:      func() runtime.Object { return &authenticationv1.SelfSubjectReview{} },
		NewList:  func() runtime.Object { return &authenticationv1.SelfSubjectReview{} },
		Review:   Review,
	}}
}

// Review answers with the request's user.
func Review(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
	u, ok := authn.UserFrom(ctx)
	if !ok {
		return nil, apierrors.NewUnauthorized("no user information on the request")
	}
	r := obj.(*authenticationv1.SelfSubjectReview).DeepCopy()
	r.Status.UserInfo = authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: append([]string(nil), u.Groups...)}
	if len(u.Extra) > 0 {
		r.Status.UserInfo.Extra = map[string]authenticationv1.ExtraValue{}
		for k, v := range u.Extra {
			r.Status.UserInfo.Extra[k] = append(authenticationv1.ExtraValue(nil), v...)
		}
	}
	return r, nil
}
