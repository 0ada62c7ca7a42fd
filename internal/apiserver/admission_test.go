package apiserver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestAddDefaultTolerations(t *testing.T) {
	pod := &corev1.Pod{}
	addDefaultTolerations(pod)
	if len(pod.Spec.Tolerations) != 2 {
		t.Fatalf("tolerations %+v", pod.Spec.Tolerations)
	}
	for _, tol := range pod.Spec.Tolerations {
		if tol.Effect != corev1.TaintEffectNoExecute || tol.Operator != corev1.TolerationOpExists || *tol.TolerationSeconds != 300 {
			t.Errorf("toleration %+v", tol)
		}
	}
	// A pod tolerating everything gets nothing more.
	all := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}}}
	addDefaultTolerations(all)
	if len(all.Spec.Tolerations) != 1 {
		t.Errorf("tolerate-all pod got %+v", all.Spec.Tolerations)
	}
	// One of its own for not-ready is kept, only unreachable is added.
	own := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}}}
	addDefaultTolerations(own)
	if len(own.Spec.Tolerations) != 2 || own.Spec.Tolerations[0].TolerationSeconds != nil || own.Spec.Tolerations[1].Key != corev1.TaintNodeUnreachable {
		t.Errorf("pod with its own not-ready toleration: %+v", own.Spec.Tolerations)
	}
}
