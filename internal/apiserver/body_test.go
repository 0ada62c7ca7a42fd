package apiserver

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestReadBody(t *testing.T) {
	big := strings.Repeat("x", maxBodyBytes+1)
	tests := []struct {
		name          string
		body          string
		contentLength int64 // -1: unknown
		want413       bool
	}{
		{"sized", `{"kind":"Pod"}`, 14, false},
		{"unknown length", `{"kind":"Pod"}`, -1, false},
		{"over the limit, sized", big, int64(len(big)), true},
		{"over the limit, unknown length", big, -1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/namespaces/ns/pods", io.NopCloser(strings.NewReader(tc.body)))
			r.ContentLength = tc.contentLength
			got, err := readBody(httptest.NewRecorder(), r)
			if tc.want413 {
				if se, ok := err.(*apierrors.StatusError); !ok || se.Status().Code != http.StatusRequestEntityTooLarge {
					t.Fatalf("err = %v, want 413", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, []byte(tc.body)) {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}
