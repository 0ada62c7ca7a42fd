package quota

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLimitRanger: a namespace's LimitRange defaults pod resources (and
// says so in an annotation), rejects pods and claims outside its bounds
// with upstream's messages, and an inconsistent LimitRange is invalid.
func TestLimitRanger(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "limits")
	bad := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
		{Type: corev1.LimitTypeContainer, Min: corev1.ResourceList{"cpu": mustQ("2")}, Max: corev1.ResourceList{"cpu": mustQ("1")}}}}}
	if _, err := cs.CoreV1().LimitRanges(ns).Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "min value 2 is greater than max value 1") {
		t.Fatalf("inconsistent LimitRange: got %v, want 422", err)
	}
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "limits"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
		{Type: corev1.LimitTypeContainer, Default: corev1.ResourceList{"cpu": mustQ("500m"), "memory": mustQ("256Mi")},
			DefaultRequest: corev1.ResourceList{"cpu": mustQ("100m")}, Max: corev1.ResourceList{"memory": mustQ("1Gi")}},
		{Type: corev1.LimitTypePersistentVolumeClaim, Max: corev1.ResourceList{"storage": mustQ("10Gi")}},
	}}}
	got, err := cs.CoreV1().LimitRanges(ns).Create(ctx, lr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Spec.Limits[0].DefaultRequest["memory"]; d.String() != "256Mi" {
		t.Fatalf("defaultRequest.memory defaults to default.memory, got %v", got.Spec.Limits[0].DefaultRequest)
	}
	p, err := cs.CoreV1().Pods(ns).Create(ctx, pod("defaulted", nil, ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Spec.Containers[0].Resources
	if r.Requests.Cpu().String() != "100m" || r.Limits.Cpu().String() != "500m" || r.Limits.Memory().String() != "256Mi" {
		t.Fatalf("defaulted resources: %+v", r)
	}
	if a := p.Annotations["kubernetes.io/limit-ranger"]; !strings.Contains(a, "LimitRanger plugin set: cpu, memory request for container c") {
		t.Fatalf("annotation %q", a)
	}
	big := pod("big", nil, "")
	big.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"memory": mustQ("2Gi")}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, big, metav1.CreateOptions{}); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), "maximum memory usage per Container is 1Gi, but limit is 2Gi") {
		t.Fatalf("pod over max: got %v, want 403", err)
	}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "huge"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": mustQ("20Gi")}}}}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, claim, metav1.CreateOptions{}); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi") {
		t.Fatalf("claim over max: got %v, want 403", err)
	}
}
