package kubelet

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStatusOnlyUpdate(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", ResourceVersion: "1", Labels: map[string]string{"a": "b"}},
			Spec:       corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodPending},
		}
	}
	now := metav1.Now()
	for _, tc := range []struct {
		name   string
		change func(p *corev1.Pod)
		want   bool
	}{
		{"status and resourceVersion only", func(p *corev1.Pod) {
			p.ResourceVersion = "2"
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIP = "10.0.0.2"
		}, true},
		{"to a terminal phase", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }, false},
		{"spec", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "j" }, false},
		{"labels", func(p *corev1.Pod) { p.Labels["a"] = "c" }, false},
		{"annotations", func(p *corev1.Pod) { p.Annotations = map[string]string{"x": "y"} }, false},
		{"deletion", func(p *corev1.Pod) { p.DeletionTimestamp = &now }, false},
		{"finalizers", func(p *corev1.Pod) { p.Finalizers = []string{"f"} }, false},
		{"new UID", func(p *corev1.Pod) { p.UID = "u2" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, upd := base(), base()
			tc.change(upd)
			if got := statusOnlyUpdate(old, upd); got != tc.want {
				t.Errorf("statusOnlyUpdate = %v, want %v", got, tc.want)
			}
		})
	}
	if statusOnlyUpdate("not a pod", base()) {
		t.Error("statusOnlyUpdate of a non-pod = true, want false")
	}
}
