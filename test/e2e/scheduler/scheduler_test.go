// Package scheduler_test checks the scheduler inside `skiff server`
// against Node objects created through the API (no kubelet needed).
package scheduler_test

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

var srv *framework.Server

func TestMain(m *testing.M) { os.Exit(framework.RunWithServer(m, &srv)) }

func node(name, cpu string, lbls map[string]string, taints ...corev1.Taint) *corev1.Node {
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Spec: corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{Capacity: alloc, Allocatable: alloc}}
}

func pod(name, cpu string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "pause",
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}}}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func waitFor(t *testing.T, cs kubernetes.Interface, ns, name string, cond func(*corev1.Pod) bool, what string) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: %s not reached in 15s; last %+v %v", name, what, p.Status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func bound(p *corev1.Pod) bool { return p.Spec.NodeName != "" }

func TestScheduling(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, 2*time.Minute)
	for _, n := range []*corev1.Node{
		node("big-a", "2", map[string]string{"zone": "a"}),
		node("gpu", "8", map[string]string{"zone": "b"}, corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}),
		node("small", "500m", map[string]string{"zone": "c"}),
	} {
		if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ns := "sched"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	create := func(p *corev1.Pod) {
		t.Helper()
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	create(pod("fits-one", "1"))
	p := waitFor(t, cs, ns, "fits-one", bound, "bound")
	if p.Spec.NodeName != "big-a" {
		t.Errorf("1-cpu pod on %s, want big-a (gpu is tainted, small too small)", p.Spec.NodeName)
	}
	scheduled := false
	for _, c := range p.Status.Conditions {
		scheduled = scheduled || (c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue)
	}
	if !scheduled {
		t.Errorf("bound pod lacks PodScheduled=True: %+v", p.Status.Conditions)
	}

	create(pod("selector", "100m", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "c"} }))
	if p := waitFor(t, cs, ns, "selector", bound, "bound"); p.Spec.NodeName != "small" {
		t.Errorf("nodeSelector zone=c pod on %s", p.Spec.NodeName)
	}
	create(pod("tolerates", "100m", func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"zone": "b"}
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	}))
	if p := waitFor(t, cs, ns, "tolerates", bound, "bound"); p.Spec.NodeName != "gpu" {
		t.Errorf("tolerating pod on %s", p.Spec.NodeName)
	}

	// Fits nowhere: pending with upstream's message, then placed when a
	// big enough node appears.
	create(pod("too-big", "4"))
	p = waitFor(t, cs, ns, "too-big", func(p *corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return true
			}
		}
		return false
	}, "PodScheduled=False")
	want := "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && (c.Reason != "Unschedulable" || c.Message != want) {
			t.Errorf("unschedulable condition %q %q, want Unschedulable %q", c.Reason, c.Message, want)
		}
	}
	events, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=too-big,reason=FailedScheduling"})
	if err != nil || len(events.Items) == 0 {
		t.Errorf("no FailedScheduling event: %v %v", events, err)
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node("huge", "16", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := waitFor(t, cs, ns, "too-big", bound, "bound after a big node appeared"); p.Spec.NodeName != "huge" {
		t.Errorf("too-big pod on %s", p.Spec.NodeName)
	}

	// Pods for another scheduler, or naming their node, are left alone.
	create(pod("other-scheduler", "100m", func(p *corev1.Pod) { p.Spec.SchedulerName = "someone-else" }))
	time.Sleep(2 * time.Second)
	if p, _ := cs.CoreV1().Pods(ns).Get(ctx, "other-scheduler", metav1.GetOptions{}); p.Spec.NodeName != "" || len(p.Status.Conditions) != 0 {
		t.Errorf("pod for another scheduler was touched: %s %+v", p.Spec.NodeName, p.Status.Conditions)
	}
}
