package apiserver

import (
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

func TestValidateTokenRequest(t *testing.T) {
	secs := func(n int64) *int64 { return &n }
	cases := []struct {
		name    string
		in      *int64
		want    int64
		wantErr string
	}{
		{name: "default", want: 3600},
		{name: "minimum", in: secs(600), want: 600},
		{name: "too short", in: secs(599), wantErr: "may not specify a duration less than 10 minutes"},
		{name: "too long", in: secs(1 << 33), wantErr: "spec.expirationSeconds"},
	}
	for _, tc := range cases {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: tc.in}}
		errs := validateTokenRequest(tr)
		if tc.wantErr != "" {
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.wantErr) {
				t.Errorf("%s: errors %v, want %q", tc.name, errs, tc.wantErr)
			}
			continue
		}
		if len(errs) > 0 || *tr.Spec.ExpirationSeconds != tc.want {
			t.Errorf("%s: %v, expirationSeconds %d", tc.name, errs, *tr.Spec.ExpirationSeconds)
		}
	}
}
