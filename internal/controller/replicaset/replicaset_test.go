package replicaset

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(name, node string, phase corev1.PodPhase, ready bool, restarts int32, age time.Duration) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Unix(10000, 0).Add(-age))},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{RestartCount: restarts}}},
	}
	if ready {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(time.Unix(10000, 0).Add(-age / 2))}}
	}
	return p
}

func TestPodsToDelete(t *testing.T) {
	tests := []struct {
		name string
		pods []*corev1.Pod
		want string
	}{
		{"unscheduled first", []*corev1.Pod{pod("a", "n1", corev1.PodRunning, true, 0, time.Hour), pod("b", "", corev1.PodPending, false, 0, time.Hour)}, "b"},
		{"pending before running", []*corev1.Pod{pod("a", "n1", corev1.PodRunning, true, 0, time.Hour), pod("b", "n2", corev1.PodPending, false, 0, time.Hour)}, "b"},
		{"not ready before ready", []*corev1.Pod{pod("a", "n1", corev1.PodRunning, true, 0, time.Hour), pod("b", "n2", corev1.PodRunning, false, 0, time.Hour)}, "b"},
		{"doubled-up node first", []*corev1.Pod{pod("a", "n1", corev1.PodRunning, true, 0, time.Hour), pod("b", "n2", corev1.PodRunning, true, 0, time.Hour), pod("c", "n2", corev1.PodRunning, true, 0, 2*time.Hour)}, "b"},
		{"more restarts first", []*corev1.Pod{pod("a", "n1", corev1.PodRunning, false, 0, time.Hour), pod("b", "n2", corev1.PodRunning, false, 5, time.Hour)}, "b"},
		{"newer first", []*corev1.Pod{pod("a", "n1", corev1.PodRunning, false, 0, time.Hour), pod("b", "n2", corev1.PodRunning, false, 0, time.Minute)}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PodsToDelete(tt.pods, 1)
			if len(got) != 1 || got[0].Name != tt.want {
				t.Fatalf("deleted %s, want %s", got[0].Name, tt.want)
			}
		})
	}
	all := []*corev1.Pod{pod("a", "", corev1.PodPending, false, 0, 0), pod("b", "", corev1.PodPending, false, 0, 0)}
	if len(PodsToDelete(all, 5)) != 2 {
		t.Fatal("asking for more than exist returns all")
	}
}
