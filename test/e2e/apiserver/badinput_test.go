package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// rawClient is an HTTP client with the admin certificate.
func rawClient(t *testing.T) *http.Client {
	t.Helper()
	cfg := srv.RESTConfig()
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone()}, Timeout: 30 * time.Second}
}

type served struct {
	path       string // collection URL
	kind, apiV string
	namespaced bool
}

// servedResources walks discovery for every top-level resource.
func servedResources(t *testing.T, c *http.Client) []served {
	t.Helper()
	var out []served
	gvs := []string{"/api/v1"}
	var groups metav1.APIGroupList
	getJSON(t, c, "/apis", &groups)
	for _, g := range groups.Groups {
		gvs = append(gvs, "/apis/"+g.PreferredVersion.GroupVersion)
	}
	for _, gv := range gvs {
		var list metav1.APIResourceList
		getJSON(t, c, gv, &list)
		for _, r := range list.APIResources {
			// Subresources, and create-only reviews (nothing to count).
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			p := gv + "/" + r.Name
			if r.Namespaced {
				p = gv + "/namespaces/default/" + r.Name
			}
			out = append(out, served{path: p, kind: r.Kind, apiV: strings.TrimPrefix(strings.TrimPrefix(gv, "/api/"), "/apis/"), namespaced: r.Namespaced})
		}
	}
	if len(out) < 25 {
		t.Fatalf("discovery lists only %d resources", len(out))
	}
	return out
}

func getJSON(t *testing.T, c *http.Client, path string, into interface{}) {
	t.Helper()
	resp, err := c.Get(srv.URL() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type badRequest struct {
	name        string
	method      string
	suffix      string // appended to the collection path
	contentType string
	body        func(r served) []byte
	want        []int // acceptable codes
	msg         string
}

func TestMalformedBodiesNeverCause5xx(t *testing.T) {
	c := rawClient(t)
	resources := servedResources(t, c)
	obj := func(r served, meta string, extra string) []byte {
		return []byte(fmt.Sprintf(`{"apiVersion":%q,"kind":%q,"metadata":%s%s}`, r.apiV, r.kind, meta, extra))
	}
	nested := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	corpus := []badRequest{
		{name: "empty", body: func(served) []byte { return nil }, want: []int{400}},
		{name: "open brace", body: func(served) []byte { return []byte("{") }, want: []int{400}},
		{name: "array", body: func(served) []byte { return []byte("[]") }, want: []int{400}},
		// Upstream defaults a missing kind from the URL, so these reach
		// validation: 422 for the missing name.
		{name: "null", body: func(served) []byte { return []byte("null") }, want: []int{400, 422}},
		{name: "string", body: func(served) []byte { return []byte(`"str"`) }, want: []int{400}},
		{name: "no kind", body: func(served) []byte { return []byte(`{"apiVersion":"v1"}`) }, want: []int{400, 422}},
		{name: "wrong kind", body: func(r served) []byte {
			return []byte(fmt.Sprintf(`{"apiVersion":%q,"kind":"NoSuchKind","metadata":{"name":"x"}}`, r.apiV))
		}, want: []int{400}},
		{name: "wrong apiVersion", body: func(r served) []byte {
			return []byte(fmt.Sprintf(`{"apiVersion":"nosuch.group/v9","kind":%q,"metadata":{"name":"x"}}`, r.kind))
		}, want: []int{400}},
		// Invalid for DNS names and for RBAC's path-segment names alike.
		{name: "invalid name", body: func(r served) []byte { return obj(r, `{"name":"Bad_Name/x"}`, "") }, want: []int{422}, msg: "Bad_Name/x"},
		{name: "name of wrong type", body: func(r served) []byte { return obj(r, `{"name":5}`, "") }, want: []int{400}},
		{name: "unknown field strict", suffix: "?fieldValidation=Strict", body: func(r served) []byte { return obj(r, `{"name":"strict-x"}`, `,"bogusField":1`) },
			want: []int{400}, msg: "bogusField"},
		{name: "deep nesting", body: func(served) []byte { return []byte(nested) }, want: []int{400}},
		{name: "oversized", body: func(r served) []byte { return obj(r, `{"name":"big"}`, `,"x":"`+strings.Repeat("a", 4<<20)+`"`) }, want: []int{413}},
		{name: "malformed yaml", contentType: "application/yaml", body: func(served) []byte { return []byte("a: [\n  b: {") }, want: []int{400}},
		{name: "random protobuf", contentType: "application/vnd.kubernetes.protobuf", body: func(served) []byte { return []byte("k8s\x00\x01\x02garbage\xff\xfe") }, want: []int{400}},
		{name: "unsupported media type", contentType: "text/plain", body: func(served) []byte { return []byte("hello") }, want: []int{415}},
	}
	for _, r := range resources {
		before := count(t, c, r.path)
		for _, br := range corpus {
			ct := br.contentType
			if ct == "" {
				ct = "application/json"
			}
			code, body := do(t, c, "POST", r.path+br.suffix, ct, br.body(r))
			if code >= 500 {
				t.Errorf("POST %s (%s): %d %s", r.path, br.name, code, trim(body))
				continue
			}
			ok := false
			for _, w := range br.want {
				ok = ok || code == w
			}
			if !ok {
				t.Errorf("POST %s (%s): %d %s, want %v", r.path, br.name, code, trim(body), br.want)
				continue
			}
			var st metav1.Status
			if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || st.Code != int32(code) || st.Message == "" {
				t.Errorf("POST %s (%s): body is not a Status with code %d and a message: %s", r.path, br.name, code, trim(body))
			}
			if br.msg != "" && !strings.Contains(st.Message, br.msg) {
				t.Errorf("POST %s (%s): message %q does not name %q", r.path, br.name, st.Message, br.msg)
			}
		}
		if after := count(t, c, r.path); after != before {
			t.Errorf("%s: %d objects before the bad requests, %d after: something was written", r.path, before, after)
		}
	}
}

func TestStaleUpdateAndBadPatches(t *testing.T) {
	c := rawClient(t)
	ctx := framework.Context(t, time.Minute)
	cs := srv.Client()
	ns := namespace(t, cs)
	path := "/api/v1/namespaces/" + ns + "/configmaps"
	code, body := do(t, c, "POST", path, "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`))
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var cm map[string]interface{}
	json.Unmarshal(body, &cm)
	rv := cm["metadata"].(map[string]interface{})["resourceVersion"].(string)
	// Make the version stale.
	if code, body := do(t, c, "PATCH", path+"/c", "application/merge-patch+json", []byte(`{"data":{"a":"1"}}`)); code != 200 {
		t.Fatalf("patch: %d %s", code, body)
	}
	stale := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","resourceVersion":%q},"data":{"a":"2"}}`, rv)
	if code, body := do(t, c, "PUT", path+"/c", "application/json", []byte(stale)); code != 409 || !strings.Contains(string(body), "the object has been modified") {
		t.Errorf("stale update: %d %s, want 409", code, trim(body))
	}
	for name, tc := range map[string]struct {
		ct, body string
		want     int
	}{
		"json patch not a list":  {"application/json-patch+json", `{"op":"add"}`, 400},
		"json patch bad op":      {"application/json-patch+json", `[{"op":"frobnicate","path":"/data/a"}]`, 422},
		"json patch failed test": {"application/json-patch+json", `[{"op":"test","path":"/data/a","value":"nope"}]`, 422},
		"merge patch malformed":  {"application/merge-patch+json", `{"data":`, 400},
		"smp malformed":          {"application/strategic-merge-patch+json", `{`, 400},
		"apply without manager":  {"application/apply-patch+yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n", 422},
		"unknown patch type":     {"application/x-unknown", `{}`, 415},
		"patch changes name":     {"application/merge-patch+json", `{"metadata":{"name":"other"}}`, 400},
	} {
		code, body := do(t, c, "PATCH", path+"/c", tc.ct, []byte(tc.body))
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", name, code, trim(body), tc.want)
		}
	}
	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "c", metav1.GetOptions{})
	if err != nil || got.Data["a"] != "1" {
		t.Fatalf("configmap after rejected writes: %v %v", got.Data, err)
	}
	if !alive(c) {
		t.Fatal("server stopped answering")
	}
}

func alive(c *http.Client) bool {
	resp, err := c.Get(srv.URL() + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func do(t *testing.T, c *http.Client, method, path, ct string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, srv.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func count(t *testing.T, c *http.Client, path string) int {
	t.Helper()
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	getJSON(t, c, path, &list)
	return len(list.Items)
}

func trim(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
