package apiserver

import (
	"net/http/httptest"
	"testing"
)

func TestParseResourcePath(t *testing.T) {
	tests := []struct {
		method, url string
		want        requestInfo
		ok          bool
	}{
		{"GET", "/api/v1/pods", requestInfo{Version: "v1", Resource: "pods", Verb: "list"}, true},
		{"GET", "/api/v1/namespaces/default/pods", requestInfo{Version: "v1", Namespace: "default", Resource: "pods", Verb: "list"}, true},
		{"GET", "/api/v1/namespaces/default/pods?watch=true", requestInfo{Version: "v1", Namespace: "default", Resource: "pods", Verb: "watch"}, true},
		{"GET", "/api/v1/watch/namespaces/default/pods", requestInfo{Version: "v1", Namespace: "default", Resource: "pods", Verb: "watch", LegacyWatch: true}, true},
		{"GET", "/api/v1/namespaces/default/pods/p1", requestInfo{Version: "v1", Namespace: "default", Resource: "pods", Name: "p1", Verb: "get"}, true},
		{"PUT", "/api/v1/namespaces/default/pods/p1/status", requestInfo{Version: "v1", Namespace: "default", Resource: "pods", Name: "p1", Subresource: "status", Verb: "update"}, true},
		{"POST", "/api/v1/namespaces/default/pods/p1/binding", requestInfo{Version: "v1", Namespace: "default", Resource: "pods", Name: "p1", Subresource: "binding", Verb: "create"}, true},
		{"GET", "/api/v1/namespaces/kube-system", requestInfo{Version: "v1", Resource: "namespaces", Name: "kube-system", Verb: "get"}, true},
		{"PUT", "/api/v1/namespaces/demo/finalize", requestInfo{Version: "v1", Resource: "namespaces", Name: "demo", Subresource: "finalize", Verb: "update"}, true},
		{"PATCH", "/api/v1/namespaces/demo/status", requestInfo{Version: "v1", Resource: "namespaces", Name: "demo", Subresource: "status", Verb: "patch"}, true},
		{"DELETE", "/apis/apps/v1/namespaces/x/deployments", requestInfo{Group: "apps", Version: "v1", Namespace: "x", Resource: "deployments", Verb: "deletecollection"}, true},
		{"DELETE", "/apis/apps/v1/namespaces/x/deployments/d", requestInfo{Group: "apps", Version: "v1", Namespace: "x", Resource: "deployments", Name: "d", Verb: "delete"}, true},
		{"GET", "/apis/apps/v1/namespaces/x/deployments/d/scale", requestInfo{Group: "apps", Version: "v1", Namespace: "x", Resource: "deployments", Name: "d", Subresource: "scale", Verb: "get"}, true},
		{"GET", "/api/v1", requestInfo{}, false},
		{"GET", "/apis/apps/v1", requestInfo{}, false},
		{"GET", "/api/v1/namespaces/x/pods/p/status/extra", requestInfo{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.url, func(t *testing.T) {
			got, ok := parseResourcePath(httptest.NewRequest(tt.method, tt.url, nil))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, got)
			}
			if ok && got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseAccept(t *testing.T) {
	got := parseAccept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json")
	if len(got) != 3 {
		t.Fatalf("got %d media types: %+v", len(got), got)
	}
	if got[0] != (mediaType{Type: "application/json", As: "Table", Group: "meta.k8s.io", Ver: "v1"}) {
		t.Errorf("first = %+v", got[0])
	}
	if got[2] != (mediaType{Type: "application/json"}) {
		t.Errorf("last = %+v", got[2])
	}
	if d := parseAccept(""); len(d) != 1 || d[0].Type != "application/json" {
		t.Errorf("empty Accept = %+v", d)
	}
	if bad := parseAccept(";;;"); len(bad) != 0 {
		t.Errorf("garbage Accept = %+v", bad)
	}
}
