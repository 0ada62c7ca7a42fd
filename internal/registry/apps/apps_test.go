package apps

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func deployment() *appsv1.Deployment {
	l := map[string]string{"app": "w"}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "w"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}}}
}

func TestDeploymentStrategy(t *testing.T) {
	s := Resources()[0].Strategy
	ctx := context.Background()
	d := deployment()
	s.Default(d)
	s.PrepareForCreate(ctx, d)
	if d.Generation != 1 || *d.Spec.Replicas != 1 || d.Spec.Strategy.RollingUpdate.MaxUnavailable.String() != "25%" || *d.Spec.RevisionHistoryLimit != 10 {
		t.Fatalf("defaults: %+v", d.Spec)
	}
	if errs := s.Validate(ctx, d); len(errs) != 0 {
		t.Fatalf("valid deployment rejected: %v", errs)
	}
	bad := d.DeepCopy()
	bad.Spec.Template.Labels = map[string]string{"app": "other"}
	if errs := s.Validate(ctx, bad); len(errs) != 1 || errs[0].Field != "spec.template.metadata.labels" {
		t.Errorf("selector mismatch: %v", errs)
	}
	zero := intstr.FromInt32(0)
	bad = d.DeepCopy()
	bad.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: &zero, MaxSurge: &zero}
	if errs := s.Validate(ctx, bad); len(errs) != 1 {
		t.Errorf("maxSurge and maxUnavailable both 0: %v", errs)
	}
	// Generation moves with the spec, not with metadata.
	upd := d.DeepCopy()
	upd.Labels = map[string]string{"x": "y"}
	s.PrepareForUpdate(ctx, upd, d)
	if upd.Generation != 1 {
		t.Errorf("label change bumped generation to %d", upd.Generation)
	}
	upd.Spec.Replicas = new(int32)
	s.PrepareForUpdate(ctx, upd, d)
	if upd.Generation != 2 {
		t.Errorf("spec change: generation %d", upd.Generation)
	}
	moved := d.DeepCopy()
	moved.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	moved.Spec.Template.Labels = map[string]string{"app": "x"}
	if errs := s.ValidateUpdate(ctx, moved, d); len(errs) != 1 || errs[0].Field != "spec.selector" {
		t.Errorf("selector change: %v", errs)
	}
}
