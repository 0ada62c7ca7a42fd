package kubelet

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestObjectWatch(t *testing.T) {
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": "A"}}
	client := fake.NewSimpleClientset(cm)
	w := newObjectWatch(client)
	defer w.stopAll()
	key := objectKey{"configmap", "ns", "kube-root-ca.crt"}

	// Many pods, one watch, no GET.
	for _, uid := range []string{"p1", "p2", "p3"} {
		obj, err := w.get(ctx, key, uid)
		if err != nil || obj.(*corev1.ConfigMap).Data["ca.crt"] != "A" {
			t.Fatalf("get for %s: %v %v", uid, obj, err)
		}
	}
	verbs := map[string]int{}
	for _, a := range client.Actions() {
		verbs[a.GetVerb()]++
	}
	if verbs["get"] != 0 || verbs["list"] != 1 || verbs["watch"] != 1 {
		t.Errorf("API calls %v, want one list and one watch", verbs)
	}

	// A change reaches the next lookup through the watch.
	cm.Data["ca.crt"] = "B"
	if _, err := client.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		obj, err := w.get(ctx, key, "p1")
		if err == nil && obj.(*corev1.ConfigMap).Data["ca.crt"] == "B" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("update not seen: %v %v", obj, err)
		}
	}

	// A missing object is NotFound, named as upstream's managers name it.
	_, err := w.get(ctx, objectKey{"secret", "ns", "nope"}, "p1")
	if !apierrors.IsNotFound(err) || err.Error() != `secret "nope" not found` {
		t.Errorf("missing secret: %v", err)
	}
	if _, err := w.get(ctx, objectKey{"service", "default", "kubernetes"}, ""); !apierrors.IsNotFound(err) {
		t.Errorf("missing service: %v", err)
	}

	// Watches stop with their last pod; the kept one stays.
	w.release("p1")
	w.release("p2")
	// p3 still needs the ConfigMap; the Secret was p1's alone.
	if len(w.entries) != 2 || w.entries[key] == nil {
		t.Errorf("after releasing p1, p2: %v, want the ConfigMap's and the Service's", w.entries)
	}
	w.release("p3")
	if len(w.entries) != 1 || w.entries[objectKey{"service", "default", "kubernetes"}] == nil {
		t.Errorf("after releasing every pod: %v, want only the kubernetes Service's", w.entries)
	}
}
