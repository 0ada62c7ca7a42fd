package apiserver

import (
	"net/http/httptest"
	"testing"
)

func TestParseNodeProxyPath(t *testing.T) {
	for _, tc := range []struct {
		path         string
		ok           bool
		name, subres string
		verb, method string
	}{
		{"/api/v1/nodes/n1/proxy/stats/summary", true, "n1", "proxy", "get", "GET"},
		{"/api/v1/nodes/n1/proxy", true, "n1", "proxy", "create", "POST"},
		{"/api/v1/nodes/n1:10250/proxy/metrics/resource", true, "n1:10250", "proxy", "get", "GET"},
		{"/api/v1/nodes/n1/status/extra", false, "", "", "", "GET"},
	} {
		info, ok := parseResourcePath(httptest.NewRequest(tc.method, tc.path, nil))
		if ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.path, ok, tc.ok)
			continue
		}
		if ok && (info.Name != tc.name || info.Subresource != tc.subres || info.Verb != tc.verb || info.Resource != "nodes") {
			t.Errorf("%s: got %+v", tc.path, info)
		}
	}
}
