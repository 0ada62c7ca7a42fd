package authentication

import (
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-sh/skiff/internal/apiserver/authn"
)

func TestReview(t *testing.T) {
	ctx := authn.WithUser(context.Background(), &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"},
		Extra: map[string][]string{"k": {"v"}}})
	out, err := Review(ctx, &authenticationv1.SelfSubjectReview{})
	if err != nil {
		t.Fatal(err)
	}
	ui := out.(*authenticationv1.SelfSubjectReview).Status.UserInfo
	if ui.Username != "admin" || len(ui.Groups) != 2 || ui.Groups[0] != "system:masters" || ui.Extra["k"][0] != "v" {
		t.Errorf("user info %+v", ui)
	}
	if _, err := Review(context.Background(), &authenticationv1.SelfSubjectReview{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("no user: %v, want 401", err)
	}
}
