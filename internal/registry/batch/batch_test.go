package batch

import (
	"context"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestJobDefaultsAndSelector(t *testing.T) {
	res := Resources()[0]
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi", UID: "u-1"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c", Image: "perl"}}}}}}
	res.Strategy.Default(j)
	res.Strategy.PrepareForCreate(context.Background(), j)
	if *j.Spec.Completions != 1 || *j.Spec.Parallelism != 1 || *j.Spec.BackoffLimit != 6 || *j.Spec.CompletionMode != batchv1.NonIndexedCompletion {
		t.Errorf("job defaults: %+v", j.Spec)
	}
	if j.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] != "u-1" || j.Spec.Template.Labels[batchv1.JobNameLabel] != "pi" || j.Spec.Template.Labels["controller-uid"] != "u-1" {
		t.Errorf("generated selector %v, labels %v", j.Spec.Selector, j.Spec.Template.Labels)
	}
	if errs := res.Strategy.Validate(context.Background(), j); len(errs) != 0 {
		t.Errorf("valid job rejected: %v", errs)
	}
	j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	if errs := res.Strategy.Validate(context.Background(), j); len(errs) != 1 || errs[0].Field != "spec.template.spec.restartPolicy" {
		t.Errorf("restartPolicy Always: %v", errs)
	}
}

func TestCheckSchedule(t *testing.T) {
	for sched, ok := range map[string]bool{
		"*/5 * * * *":        true,
		"0 3 * * mon-fri":    true,
		"@hourly":            true,
		"0 0 1 jan *":        true,
		"* * * *":            false,
		"61 * * * *":         false,
		"@sometimes":         false,
		"@every 90s":         true,
		"@every soon":        false,
		"TZ=UTC 0 * * * *":   false,
		"*/0 * * * *":        false,
		"0 24 * * *":         false,
		"a b c d e":          false,
		"0,15,30,45 * * * *": true,
	} {
		if got := checkSchedule(sched) == ""; got != ok {
			t.Errorf("%q valid = %v, want %v (%s)", sched, got, ok, checkSchedule(sched))
		}
	}
}
