package scheduler

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	st "github.com/skiff-sh/skiff/internal/scheduler/schedtest"
)

// benchPod is pod i of test/bench's constrained run: 10% required and 10%
// preferred anti-affinity on hostname within a group, 10% zone spread.
func benchPod(i int) *corev1.Pod {
	p := st.MakePod().Name(fmt.Sprintf("p-%05d", i)).Namespace("bench").Label("app", "bench").Obj()
	p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	kind := i % 10
	if kind > 2 {
		return p
	}
	grp := fmt.Sprintf("k%d-g%d", kind, (i/10)%100)
	p.Labels["grp"] = grp
	term := corev1.PodAffinityTerm{TopologyKey: corev1.LabelHostname, LabelSelector: st.Sel("grp", grp)}
	switch kind {
	case 0:
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term}}}
	case 1:
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: term}}}}
	case 2:
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: st.Sel("grp", grp)}}
	}
	return p
}

// BenchmarkScheduleConstrained schedules the bench mix onto 1,000 nodes
// (cycles only: no API, no binds). Each b.N is one pod; the cluster is
// refilled every 10,000 pods.
func BenchmarkScheduleConstrained(b *testing.B) {
	var s *Scheduler
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("110")}
	reset := func() {
		var err error
		if s, err = New(Config{Client: fake.NewSimpleClientset()}); err != nil {
			b.Fatal(err)
		}
		for i := 1; i <= 1000; i++ {
			name := fmt.Sprintf("node-%04d", i)
			s.cache.setNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"zone": fmt.Sprintf("z%d", i%3), corev1.LabelHostname: name}},
				Status: corev1.NodeStatus{Allocatable: alloc}})
		}
	}
	ctx := context.Background()
	reset()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%10000 == 0 {
			b.StopTimer()
			reset()
			b.StartTimer()
		}
		p := benchPod(i%10000 + 1)
		r := s.pick(ctx, p)
		if r.host == "" {
			b.Fatalf("pod %d: %s", i, r.diagnosis.Message(r.total))
		}
		p.Spec.NodeName = r.host
		s.cache.place(p)
	}
}
