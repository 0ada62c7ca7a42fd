package imagelocality

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                    "docker.io/library/nginx:latest",
		"nginx:1.25":               "docker.io/library/nginx:1.25",
		"user/app":                 "docker.io/user/app:latest",
		"registry.local:5000/x":    "registry.local:5000/x:latest",
		"registry.local:5000/x:v1": "registry.local:5000/x:v1",
		"nginx@sha256:abc":         "docker.io/library/nginx@sha256:abc",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScore(t *testing.T) {
	node := func(images ...corev1.ContainerImage) *framework.NodeInfo {
		return framework.NewNodeInfo(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{Images: images}})
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1.25"}}}}
	big := corev1.ContainerImage{Names: []string{"docker.io/library/nginx:1.25"}, SizeBytes: 500 * mb}
	tiny := corev1.ContainerImage{Names: []string{"docker.io/library/nginx:1.25"}, SizeBytes: 1 * mb}
	p := ImageLocality{}
	withBig, _ := p.Score(context.Background(), nil, pod, node(big))
	withTiny, _ := p.Score(context.Background(), nil, pod, node(tiny))
	without, _ := p.Score(context.Background(), nil, pod, node())
	if withBig <= 0 || withTiny != 0 || without != 0 {
		t.Errorf("scores: big %d tiny %d none %d", withBig, withTiny, without)
	}
}
