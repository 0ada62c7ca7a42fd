package openapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/kube-openapi/pkg/spec3"

	"github.com/skiff-sh/skiff/internal/registry"
)

func testServer(t *testing.T) *httptest.Server {
	t.Helper()
	pods := &registry.Resource{Kind: "Pod", Namespaced: true,
		New: func() runtime.Object { return &corev1.Pod{} }, NewList: func() runtime.Object { return &corev1.PodList{} },
		Subresources: map[string]*registry.Subresource{"status": {Verbs: []string{"get", "update", "patch"}}}}
	pods.GroupVersionResource = corev1.SchemeGroupVersion.WithResource("pods")
	o, err := New([]*registry.Resource{pods})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	o.Install(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, accept string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body
}

// kubectl leaves validation to the server when the PATCH operation for the
// object's kind lists fieldValidation; explain needs the kind's schema.
func TestV3HasPatchWithFieldValidation(t *testing.T) {
	srv := testServer(t)
	var index struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(get(t, srv.URL+"/openapi/v3", ""), &index); err != nil {
		t.Fatal(err)
	}
	gv, ok := index.Paths["api/v1"]
	if !ok || !strings.Contains(gv.ServerRelativeURL, "hash=") {
		t.Fatalf("v3 index: %+v", index)
	}
	var doc spec3.OpenAPI
	if err := json.Unmarshal(get(t, srv.URL+gv.ServerRelativeURL, ""), &doc); err != nil {
		t.Fatal(err)
	}
	item := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}"]
	if item == nil || item.Patch == nil {
		t.Fatalf("no PATCH for a pod: %v", item)
	}
	gvk, _ := item.Patch.Extensions["x-kubernetes-group-version-kind"].(map[string]interface{})
	if gvk["kind"] != "Pod" || gvk["version"] != "v1" {
		t.Errorf("PATCH gvk extension %v", item.Patch.Extensions)
	}
	found := false
	for _, p := range item.Patch.Parameters {
		found = found || p.Name == "fieldValidation"
	}
	if !found {
		t.Error("PATCH lacks the fieldValidation parameter")
	}
	pod, ok := doc.Components.Schemas["io.k8s.api.core.v1.Pod"]
	if !ok {
		t.Fatal("no Pod schema")
	}
	if _, ok := pod.Properties["spec"]; !ok {
		t.Fatal("Pod schema without spec")
	}
	if _, ok := doc.Components.Schemas["io.k8s.api.core.v1.Container"]; !ok {
		t.Error("schemas reachable from Pod are missing")
	}
}

func TestV2ProtobufAndJSON(t *testing.T) {
	srv := testServer(t)
	raw := get(t, srv.URL+"/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	var doc openapi_v2.Document
	if err := proto.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("v2 protobuf: %v", err)
	}
	found := false
	for _, d := range doc.GetDefinitions().GetAdditionalProperties() {
		if d.GetName() == "io.k8s.api.core.v1.Pod" {
			found = true
		}
	}
	if !found {
		t.Error("v2 protobuf has no Pod definition")
	}
	var js map[string]interface{}
	if err := json.Unmarshal(get(t, srv.URL+"/openapi/v2", "application/json"), &js); err != nil || js["swagger"] != "2.0" {
		t.Fatalf("v2 JSON: %v %v", err, js["swagger"])
	}
	// v2 must not carry v3-only constructs (oneOf) that break protobuf readers.
	if strings.Contains(string(get(t, srv.URL+"/openapi/v2", "application/json")), `"oneOf"`) {
		t.Error("v2 JSON contains oneOf")
	}
}
