package scheduler

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/internal/scheduler/plugins/interpodaffinity"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/podtopologyspread"
	st "github.com/skiff-sh/skiff/internal/scheduler/schedtest"
)

func testScheduler(t *testing.T, nodes ...*corev1.Node) *Scheduler {
	t.Helper()
	s, err := New(Config{Client: fake.NewSimpleClientset()})
	if err != nil {
		t.Fatal(err)
	}
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
	for _, n := range nodes {
		n.Status.Allocatable = alloc
		s.cache.setNode(n)
	}
	return s
}

// schedule runs one cycle for p and assumes it on the chosen node, as
// scheduleOne does before the bind lands.
func schedule(t *testing.T, s *Scheduler, p *corev1.Pod) (string, string, map[string]bool) {
	t.Helper()
	r := s.pick(context.Background(), p)
	if r.host == "" {
		return "", r.diagnosis.Message(r.total), r.rejectors
	}
	assumed := p.DeepCopy()
	assumed.Spec.NodeName = r.host
	s.cache.assume(assumed)
	return r.host, "", r.rejectors
}

func TestAssumedPodsCountForAntiAffinity(t *testing.T) {
	s := testScheduler(t, st.MakeNode("a").Obj(), st.MakeNode("b").Obj(), st.MakeNode("c").Obj())
	used := map[string]bool{}
	for _, name := range []string{"w1", "w2", "w3"} {
		p := st.MakePod().Name(name).Label("app", "web").RequiredAntiAffinity(st.Term(corev1.LabelHostname, "app", "web")).Obj()
		host, msg, _ := schedule(t, s, p)
		if host == "" || used[host] {
			t.Fatalf("%s on %q (%s); used %v", name, host, msg, used)
		}
		used[host] = true
	}
	if s.cache.withRequiredAnti != 3 || s.cache.withAffinity != 3 {
		t.Errorf("affinity counts %d/%d, want 3/3", s.cache.withAffinity, s.cache.withRequiredAnti)
	}
	p := st.MakePod().Name("w4").Label("app", "web").RequiredAntiAffinity(st.Term(corev1.LabelHostname, "app", "web")).Obj()
	host, msg, rejectors := schedule(t, s, p)
	if host != "" || !strings.Contains(msg, "3 "+interpodaffinity.ErrReasonAntiAffinityRulesNotMatch) || !rejectors[interpodaffinity.Name] {
		t.Fatalf("4th pod: host %q msg %q rejectors %v", host, msg, rejectors)
	}
	// A plain pod labelled app=web is kept off by the existing pods' terms.
	host, msg, _ = schedule(t, s, st.MakePod().Name("plain").Label("app", "web").Obj())
	if host != "" || !strings.Contains(msg, interpodaffinity.ErrReasonExistingAntiAffinityRulesNotMatch) {
		t.Fatalf("plain web pod: host %q msg %q", host, msg)
	}
	s.cache.remove("default/w1")
	if s.cache.withRequiredAnti != 2 {
		t.Errorf("after remove: %d pods with required anti-affinity", s.cache.withRequiredAnti)
	}
	if host, msg, _ := schedule(t, s, p); host == "" {
		t.Fatalf("4th pod after a delete: %s", msg)
	}
}

func TestSpreadAndAffinityThroughPick(t *testing.T) {
	zone := corev1.LabelTopologyZone
	s := testScheduler(t, st.MakeNode("a1").Label(zone, "a").Obj(), st.MakeNode("a2").Label(zone, "a").Obj(),
		st.MakeNode("b1").Label(zone, "b").Obj(), st.MakeNode("b2").Label(zone, "b").Obj())
	perZone := map[string]int{}
	for _, name := range []string{"s1", "s2", "s3", "s4"} {
		p := st.MakePod().Name(name).Label("app", "s").SpreadConstraint(1, zone, corev1.DoNotSchedule, st.Sel("app", "s")).Obj()
		host, msg, _ := schedule(t, s, p)
		if host == "" {
			t.Fatalf("%s: %s", name, msg)
		}
		perZone[host[:1]]++
	}
	if perZone["a"] != 2 || perZone["b"] != 2 {
		t.Errorf("spread %v, want 2/2", perZone)
	}
	// Required affinity follows the labelled pod.
	s.cache.place(st.MakePod().Name("db").Label("app", "db").Node("b2").Obj())
	host, msg, _ := schedule(t, s, st.MakePod().Name("near").RequiredAffinity(st.Term(corev1.LabelHostname, "app", "db")).Obj())
	if host != "b2" {
		t.Errorf("affine pod on %q (%s), want b2", host, msg)
	}
	// Preferred anti-affinity steers away from the db node's zone.
	host, _, _ = schedule(t, s, st.MakePod().Name("far").PreferredAntiAffinity(100, st.Term(zone, "app", "db")).Obj())
	if host[:1] != "a" {
		t.Errorf("anti-affine pod on %q, want zone a", host)
	}
	// A spread constraint that cannot hold is reported as upstream does.
	p := st.MakePod().Name("x").Label("app", "s").SpreadConstraint(1, "rack", corev1.DoNotSchedule, st.Sel("app", "s")).Obj()
	if _, msg, rej := schedule(t, s, p); !strings.Contains(msg, "4 "+podtopologyspread.ErrReasonNodeLabelNotMatch) || !rej[podtopologyspread.Name] {
		t.Errorf("missing key: %q %v", msg, rej)
	}
}
