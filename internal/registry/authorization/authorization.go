package authorization

import (
	"context"

	authorizationv1 "k8s.io/api/authorization/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Reason is what every access review answers: truthful until an
// authorizer exists.
const Reason = "skiff has no authorizer yet: every authenticated user may do everything"

// Resources returns authorization.k8s.io/v1 reviews.
func Resources() []*registry.Resource {
	gv := authorizationv1.SchemeGroupVersion
	return []*registry.Resource{{
		GroupVersionResource: gv.WithResource("selfsubjectaccessreviews"),
		Kind:                 "SelfSubjectAccessReview", SingularName: "selfsubjectaccessreview",
		Strategy: &registry.BaseStrategy{ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			r := o.(*authorizationv1.SelfSubjectAccessReview)
			return append(emptyMeta(&r.ObjectMeta), ValidateAttributes(r.Spec.ResourceAttributes, r.Spec.NonResourceAttributes)...)
		}},
		New:     func() runtime.Object { return &authorizationv1.SelfSubjectAccessReview{} },
		NewList: func() runtime.Object { return &authorizationv1.SelfSubjectAccessReview{} },
		Review: func(_ context.Context, o runtime.Object) (runtime.Object, error) {
			r := o.(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
			r.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: Reason}
			return r, nil
		},
	}, {
		GroupVersionResource: gv.WithResource("selfsubjectrulesreviews"),
		Kind:                 "SelfSubjectRulesReview", SingularName: "selfsubjectrulesreview",
		Strategy: &registry.BaseStrategy{ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			return emptyMeta(&o.(*authorizationv1.SelfSubjectRulesReview).ObjectMeta)
		}},
		New:     func() runtime.Object { return &authorizationv1.SelfSubjectRulesReview{} },
		NewList: func() runtime.Object { return &authorizationv1.SelfSubjectRulesReview{} },
		Review: func(_ context.Context, o runtime.Object) (runtime.Object, error) {
			r := o.(*authorizationv1.SelfSubjectRulesReview).DeepCopy()
			r.Status = AllowAll()
			return r, nil
		},
	}, {
		GroupVersionResource: gv.WithResource("subjectaccessreviews"),
		Kind:                 "SubjectAccessReview", SingularName: "subjectaccessreview",
		Strategy: &registry.BaseStrategy{ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			r := o.(*authorizationv1.SubjectAccessReview)
			errs := append(emptyMeta(&r.ObjectMeta), ValidateAttributes(r.Spec.ResourceAttributes, r.Spec.NonResourceAttributes)...)
			if r.Spec.User == "" && len(r.Spec.Groups) == 0 {
				errs = append(errs, field.Invalid(field.NewPath("spec", "user"), r.Spec.User, "at least one of user or group must be specified"))
			}
			return errs
		}},
		New:     func() runtime.Object { return &authorizationv1.SubjectAccessReview{} },
		NewList: func() runtime.Object { return &authorizationv1.SubjectAccessReview{} },
		Review: func(_ context.Context, o runtime.Object) (runtime.Object, error) {
			r := o.(*authorizationv1.SubjectAccessReview).DeepCopy()
			r.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: Reason}
			return r, nil
		},
	}}
}

// AllowAll is the rules review of a user who may do everything: what
// every user may, until an authorizer exists.
func AllowAll() authorizationv1.SubjectRulesReviewStatus {
	return authorizationv1.SubjectRulesReviewStatus{
		ResourceRules:    []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
		NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
	}
}

// ValidateAttributes is upstream's rule: exactly one of resourceAttributes
// and nonResourceAttributes.
func ValidateAttributes(res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) field.ErrorList {
	switch {
	case res != nil && nonRes != nil:
		return field.ErrorList{field.Invalid(field.NewPath("spec", "nonResourceAttributes"), nonRes, "cannot be specified in combination with resourceAttributes")}
	case res == nil && nonRes == nil:
		return field.ErrorList{field.Invalid(field.NewPath("spec", "resourceAttributes"), nonRes, "exactly one of nonResourceAttributes or resourceAttributes must be specified")}
	}
	return nil
}

// emptyMeta: reviews carry no metadata, as upstream checks.
func emptyMeta(m *metav1.ObjectMeta) field.ErrorList {
	if !apiequality.Semantic.DeepEqual(metav1.ObjectMeta{}, *m) {
		return field.ErrorList{field.Invalid(field.NewPath("metadata"), m, "must be empty")}
	}
	return nil
}
