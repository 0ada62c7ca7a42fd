package scheduler_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// Each case gets its own nodes, marked with group=<name> and kept to by
// the pods' nodeSelector, so other tests' nodes in the shared server play
// no part; they are deleted at the end, as other tests count nodes.
func constraintNodes(t *testing.T, ctx context.Context, cs kubernetes.Interface, group string, extra map[string]map[string]string) {
	t.Helper()
	for name, lbls := range extra {
		t.Cleanup(func() {
			if err := cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete node %s: %v", name, err)
			}
		})
		l := map[string]string{"group": group, corev1.LabelHostname: name}
		for k, v := range lbls {
			l[k] = v
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node(name, "4", l), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func constraintNamespace(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns string) func(*corev1.Pod) {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return func(p *corev1.Pod) {
		t.Helper()
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func inGroup(group, app string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Labels = map[string]string{"app": app}
		p.Spec.NodeSelector = map[string]string{"group": group}
	}
}

func pendingWith(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c.Message
		}
	}
	return ""
}

func TestPodAntiAffinitySpreadsAndRequeues(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, 2*time.Minute)
	constraintNodes(t, ctx, cs, "anti", map[string]map[string]string{"anti-1": nil, "anti-2": nil, "anti-3": nil})
	ns := "anti"
	create := constraintNamespace(t, ctx, cs, ns)
	antiWeb := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			TopologyKey: corev1.LabelHostname, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}}}
	}
	names := []string{"web-1", "web-2", "web-3", "web-4"}
	for _, n := range names {
		create(pod(n, "100m", inGroup("anti", "web"), antiWeb))
	}
	used := map[string]string{}
	for _, n := range names[:3] {
		p := waitFor(t, cs, ns, n, bound, "bound")
		if other, dup := used[p.Spec.NodeName]; dup {
			t.Errorf("%s and %s both on %s", n, other, p.Spec.NodeName)
		}
		used[p.Spec.NodeName] = n
	}
	p := waitFor(t, cs, ns, "web-4", func(p *corev1.Pod) bool { return pendingWith(p) != "" }, "PodScheduled=False")
	if msg := pendingWith(p); !strings.Contains(msg, "3 node(s) didn't match pod anti-affinity rules") || p.Spec.NodeName != "" {
		t.Errorf("4th pod on %q with %q", p.Spec.NodeName, msg)
	}
	// Deleting one replica frees its node for the parked pod.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "web-2", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cs, ns, "web-4", bound, "bound after a replica was deleted")
}

func TestPodAffinityCoLocates(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, 2*time.Minute)
	constraintNodes(t, ctx, cs, "aff", map[string]map[string]string{"aff-1": nil, "aff-2": nil, "aff-3": nil})
	ns := "aff"
	create := constraintNamespace(t, ctx, cs, ns)
	nearDB := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			TopologyKey: corev1.LabelHostname, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}}}
	}
	// The follower comes first: it waits, and is woken when db is bound.
	create(pod("cache", "100m", inGroup("aff", "cache"), nearDB))
	waitFor(t, cs, ns, "cache", func(p *corev1.Pod) bool { return pendingWith(p) != "" }, "PodScheduled=False")
	create(pod("db", "100m", inGroup("aff", "db")))
	db := waitFor(t, cs, ns, "db", bound, "bound")
	create(pod("app", "100m", inGroup("aff", "app"), nearDB))
	for _, n := range []string{"cache", "app"} {
		if p := waitFor(t, cs, ns, n, bound, "bound"); p.Spec.NodeName != db.Spec.NodeName {
			t.Errorf("%s on %s, db on %s", n, p.Spec.NodeName, db.Spec.NodeName)
		}
	}
}

func TestTopologySpreadOverZones(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, 2*time.Minute)
	const zoneKey = "e2e.skiff.dev/zone"
	constraintNodes(t, ctx, cs, "spread", map[string]map[string]string{
		"spread-a1": {zoneKey: "a"}, "spread-a2": {zoneKey: "a"}, "spread-b1": {zoneKey: "b"}, "spread-b2": {zoneKey: "b"},
	})
	ns := "spread"
	create := constraintNamespace(t, ctx, cs, ns)
	spread := func(p *corev1.Pod) {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: zoneKey,
			WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "s"}}}}
	}
	for _, n := range []string{"s-1", "s-2", "s-3", "s-4"} {
		create(pod(n, "100m", inGroup("spread", "s"), spread))
	}
	perZone := map[string]int{}
	for _, n := range []string{"s-1", "s-2", "s-3", "s-4"} {
		p := waitFor(t, cs, ns, n, bound, "bound")
		perZone[p.Spec.NodeName[len("spread-"):][:1]]++
	}
	if perZone["a"] != 2 || perZone["b"] != 2 {
		t.Errorf("pods per zone %v, want 2/2", perZone)
	}
}
