package patch

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// TestStrategicStatus: a status-only strategic merge patch gives the
// same object as Apply on the object's JSON form; other patches, and
// results with unknown fields, are declined.
func TestStrategicStatus(t *testing.T) {
	gvk := corev1.SchemeGroupVersion.WithKind("Pod")
	current := &corev1.Pod{}
	if err := json.Unmarshal([]byte(pod), current); err != nil {
		t.Fatal(err)
	}
	current.TypeMeta = metav1.TypeMeta{} // as the store gives it
	current.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	current.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
	current.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBurstable,
		Conditions: []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}},
		PodIPs:     []corev1.PodIP{{IP: "10.0.0.1"}}}
	tests := []struct {
		name  string
		patch string
		ok    bool
	}{
		{"scheduler condition", `{"status":{"conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/0 nodes","lastTransitionTime":"2026-01-01T00:00:01Z"}]}}`, true},
		{"condition replaced by type", `{"status":{"conditions":[{"type":"Initialized","status":"False"}]}}`, true},
		{"nominated node", `{"status":{"nominatedNodeName":"n1","conditions":[{"type":"PodScheduled","status":"False"}]}}`, true},
		{"null deletes", `{"status":{"phase":null,"podIPs":null}}`, true},
		{"element order", `{"status":{"$setElementOrder/conditions":[{"type":"Ready"},{"type":"Initialized"}],"conditions":[{"type":"Ready","status":"True"}]}}`, true},
		{"replace directive", `{"status":{"$patch":"replace","phase":"Running"}}`, true},
		{"spec too", `{"spec":{"nodeName":"n"},"status":{"phase":"Running"}}`, false},
		{"metadata", `{"metadata":{"labels":{"b":"2"}}}`, false},
		{"status null", `{"status":null}`, false},
		{"unknown field", `{"status":{"nope":1}}`, false},
		{"malformed", `[1]`, false},
		{"bad directive", `{"status":{"conditions":[{"type":"Ready","$patch":"explode"}]}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := current.DeepCopy()
			got, ok := StrategicStatus(current, gvk, []byte(tt.patch), &corev1.Pod{})
			if ok != tt.ok {
				t.Fatalf("ok %v, want %v", ok, tt.ok)
			}
			if !apiequality.Semantic.DeepEqual(before, current) {
				t.Fatal("the current object changed")
			}
			if !ok {
				return
			}
			cur := current.DeepCopy()
			cur.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
			curJSON, err := json.Marshal(cur)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Apply(types.StrategicMergePatchType, curJSON, []byte(tt.patch), &corev1.Pod{})
			if err != nil {
				t.Fatal(err)
			}
			want := &corev1.Pod{}
			if err := json.Unmarshal(out, want); err != nil {
				t.Fatal(err)
			}
			if !apiequality.Semantic.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Fatalf("patched\n got %s\nwant %s", g, w)
			}
		})
	}
}
