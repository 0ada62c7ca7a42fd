package fieldmanager

import (
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func managers(t *testing.T, obj runtime.Object) map[string]metav1.ManagedFieldsOperationType {
	t.Helper()
	m := map[string]metav1.ManagedFieldsOperationType{}
	for _, e := range obj.(metav1.Object).GetManagedFields() {
		m[e.Manager] = e.Operation
	}
	return m
}

func TestApplyUpdateConflictForce(t *testing.T) {
	fm, err := New(corev1.SchemeGroupVersion.WithKind("ConfigMap"), "")
	if err != nil {
		t.Fatal(err)
	}
	live := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "default"}}
	cfg := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: default\ndata:\n  k: one\n"
	obj, err := fm.Apply(live, []byte(cfg), "kubectl", false)
	if err != nil {
		t.Fatal(err)
	}
	cm := obj.(*corev1.ConfigMap)
	if cm.Data["k"] != "one" {
		t.Fatalf("data after apply: %v", cm.Data)
	}
	if op := managers(t, cm)["kubectl"]; op != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managers: %v", managers(t, cm))
	}

	// Another manager applying the same field conflicts.
	other := strings.Replace(cfg, "one", "two", 1)
	_, err = fm.Apply(cm, []byte(other), "other", false)
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `conflict with "kubectl"`) {
		t.Fatalf("conflicting apply: %v", err)
	}
	forced, err := fm.Apply(cm, []byte(other), "other", true)
	if err != nil {
		t.Fatal(err)
	}
	if forced.(*corev1.ConfigMap).Data["k"] != "two" {
		t.Fatalf("forced apply data: %v", forced.(*corev1.ConfigMap).Data)
	}

	// A plain update records an Update entry.
	upd := forced.DeepCopyObject().(*corev1.ConfigMap)
	upd.Data["extra"] = "x"
	after, err := fm.Update(forced, upd, "kubectl-edit")
	if err != nil {
		t.Fatal(err)
	}
	if op := managers(t, after)["kubectl-edit"]; op != metav1.ManagedFieldsOperationUpdate {
		t.Fatalf("managers after update: %v", managers(t, after))
	}
}

func TestApplyRejectsWrongKindAndBadYAML(t *testing.T) {
	fm, err := New(appsv1.SchemeGroupVersion.WithKind("Deployment"), "")
	if err != nil {
		t.Fatal(err)
	}
	live := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "default"}}
	for name, body := range map[string]string{
		"wrong kind": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n",
		"no kind":    "metadata:\n  name: d\n",
		"bad yaml":   "a: [\n",
	} {
		_, err := fm.Apply(live, []byte(body), "m", false)
		if code := statusCode(err); code != http.StatusBadRequest {
			t.Errorf("%s: code %d (%v), want 400", name, code, err)
		}
	}
}

func statusCode(err error) int32 {
	if s, ok := err.(apierrors.APIStatus); ok {
		return s.Status().Code
	}
	return 0
}

func TestDefaultManager(t *testing.T) {
	for ua, want := range map[string]string{
		"kubectl/v1.32.0 (linux/amd64) kubernetes/abc": "kubectl",
		"":           "",
		"my-program": "my-program",
	} {
		if got := DefaultManager(ua); got != want {
			t.Errorf("DefaultManager(%q) = %q, want %q", ua, got, want)
		}
	}
}
