package history

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestTemplatePatchRoundTrip(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}}}
	data, err := TemplatePatch(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m["spec"]["template"]["$patch"] != "replace" {
		t.Fatalf("patch %s: %v", data, err)
	}
	got, err := Template(&appsv1.ControllerRevision{Data: runtime.RawExtension{Raw: data}})
	if err != nil || got.Spec.Containers[0].Image != "img:1" || got.Labels["app"] != "x" {
		t.Fatalf("template %+v: %v", got, err)
	}
	again, _ := TemplatePatch(tmpl)
	if string(again) != string(data) {
		t.Fatal("patch is not deterministic")
	}
}

func TestHashAndName(t *testing.T) {
	one := int32(1)
	tests := []struct {
		name      string
		a, b      []byte
		ca, cb    *int32
		wantEqual bool
	}{
		{"same data", []byte("x"), []byte("x"), nil, nil, true},
		{"other data", []byte("x"), []byte("y"), nil, nil, false},
		{"collision count changes it", []byte("x"), []byte("x"), nil, &one, false},
	}
	for _, tt := range tests {
		if got := Hash(tt.a, tt.ca) == Hash(tt.b, tt.cb); got != tt.wantEqual {
			t.Errorf("%s: equal %v, want %v", tt.name, got, tt.wantEqual)
		}
	}
	if n := Name(strings.Repeat("a", 300), "h"); len(n) != maxPrefix+2 {
		t.Errorf("long name %d chars", len(n))
	}
}
