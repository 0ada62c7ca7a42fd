package patch

import (
	"encoding/json"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
)

const pod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"1"}},"spec":{"containers":[{"name":"c1","image":"i1"},{"name":"c2","image":"i2"}]}}`

func TestApply(t *testing.T) {
	tests := []struct {
		name  string
		pt    types.PatchType
		patch string
		check func(t *testing.T, p *corev1.Pod)
		code  int32
	}{
		{"json add", types.JSONPatchType, `[{"op":"add","path":"/metadata/labels/b","value":"2"}]`,
			func(t *testing.T, p *corev1.Pod) { want(t, p.Labels["b"] == "2", "label b") }, 0},
		{"json remove", types.JSONPatchType, `[{"op":"remove","path":"/metadata/labels/a"}]`,
			func(t *testing.T, p *corev1.Pod) { want(t, p.Labels["a"] == "", "label a removed") }, 0},
		{"json failing test", types.JSONPatchType, `[{"op":"test","path":"/metadata/name","value":"other"}]`, nil, http.StatusUnprocessableEntity},
		{"json missing path", types.JSONPatchType, `[{"op":"replace","path":"/spec/nothing/here","value":1}]`, nil, http.StatusUnprocessableEntity},
		{"json malformed", types.JSONPatchType, `{"op":"add"}`, nil, http.StatusBadRequest},
		{"merge null deletes", types.MergePatchType, `{"metadata":{"labels":{"a":null,"c":"3"}}}`,
			func(t *testing.T, p *corev1.Pod) {
				want(t, p.Labels["a"] == "" && p.Labels["c"] == "3", "labels merged")
			}, 0},
		{"merge replaces lists", types.MergePatchType, `{"spec":{"containers":[{"name":"c3","image":"i3"}]}}`,
			func(t *testing.T, p *corev1.Pod) { want(t, len(p.Spec.Containers) == 1, "list replaced") }, 0},
		{"merge malformed", types.MergePatchType, `{"spec":`, nil, http.StatusBadRequest},
		{"merge not an object", types.MergePatchType, `[1]`, nil, http.StatusBadRequest},
		{"smp merges containers by name", types.StrategicMergePatchType, `{"spec":{"containers":[{"name":"c2","image":"new"}]}}`,
			func(t *testing.T, p *corev1.Pod) {
				want(t, len(p.Spec.Containers) == 2 && p.Spec.Containers[1].Image == "new" && p.Spec.Containers[0].Image == "i1", "containers merged by name")
			}, 0},
		{"smp delete directive", types.StrategicMergePatchType, `{"spec":{"containers":[{"name":"c1","$patch":"delete"}]}}`,
			func(t *testing.T, p *corev1.Pod) {
				want(t, len(p.Spec.Containers) == 1 && p.Spec.Containers[0].Name == "c2", "c1 deleted")
			}, 0},
		{"smp malformed", types.StrategicMergePatchType, `not json`, nil, http.StatusBadRequest},
		{"unknown type", types.PatchType("application/foo"), `{}`, nil, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Apply(tt.pt, []byte(pod), []byte(tt.patch), &corev1.Pod{})
			if tt.code != 0 {
				status, ok := err.(apierrors.APIStatus)
				if !ok {
					t.Fatalf("error %v (%T), want API status %d", err, err, tt.code)
				}
				if status.Status().Code != tt.code {
					t.Fatalf("code %d (%s), want %d", status.Status().Code, status.Status().Message, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var p corev1.Pod
			if err := json.Unmarshal(out, &p); err != nil {
				t.Fatal(err)
			}
			tt.check(t, &p)
		})
	}
}

func want(t *testing.T, ok bool, what string) {
	t.Helper()
	if !ok {
		t.Errorf("%s: not as expected", what)
	}
}
