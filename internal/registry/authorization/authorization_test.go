package authorization

import (
	"context"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSelfSubjectAccessReview(t *testing.T) {
	ssar := Resources()[0]
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		spec authorizationv1.SelfSubjectAccessReviewSpec
		meta metav1.ObjectMeta
		want string
	}{
		{name: "resource", spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods"}}},
		{name: "non-resource", spec: authorizationv1.SelfSubjectAccessReviewSpec{NonResourceAttributes: &authorizationv1.NonResourceAttributes{Verb: "get", Path: "/healthz"}}},
		{name: "neither", want: "spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified"},
		{name: "both", spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{}, NonResourceAttributes: &authorizationv1.NonResourceAttributes{}},
			want: "spec.nonResourceAttributes: Invalid value"},
		{name: "metadata", meta: metav1.ObjectMeta{Name: "x"}, spec: authorizationv1.SelfSubjectAccessReviewSpec{NonResourceAttributes: &authorizationv1.NonResourceAttributes{}},
			want: "metadata: Invalid value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &authorizationv1.SelfSubjectAccessReview{ObjectMeta: tc.meta, Spec: tc.spec}
			errs := ssar.Strategy.Validate(ctx, obj)
			if tc.want != "" {
				if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
					t.Fatalf("errors %v, want %q", errs, tc.want)
				}
				return
			}
			if len(errs) != 0 {
				t.Fatalf("errors %v", errs)
			}
			out, err := ssar.Review(ctx, obj)
			if err != nil {
				t.Fatal(err)
			}
			st := out.(*authorizationv1.SelfSubjectAccessReview).Status
			if !st.Allowed || st.Reason != Reason || obj.Status.Allowed {
				t.Errorf("status %+v (input mutated: %v)", st, obj.Status.Allowed)
			}
		})
	}
}

func TestRulesAndSubjectReviews(t *testing.T) {
	ctx := context.Background()
	rr := Resources()[1]
	out, err := rr.Review(ctx, &authorizationv1.SelfSubjectRulesReview{Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	st := out.(*authorizationv1.SelfSubjectRulesReview).Status
	if len(st.ResourceRules) != 1 || st.ResourceRules[0].Verbs[0] != "*" || len(st.NonResourceRules) != 1 || st.Incomplete {
		t.Errorf("rules status %+v", st)
	}
	sar := Resources()[2]
	errs := sar.Strategy.Validate(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get"}}})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "at least one of user or group must be specified") {
		t.Errorf("subject access review without user: %v", errs)
	}
}
