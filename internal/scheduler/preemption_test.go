package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listerspolicyv1 "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"

	st "github.com/skiff-sh/skiff/internal/scheduler/schedtest"
)

func pdb(name string, sel *metav1.LabelSelector, allowed int32) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: sel}, Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed}}
}

func withPDBs(t *testing.T, s *Scheduler, pdbs ...*policyv1.PodDisruptionBudget) {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, p := range pdbs {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	s.pdbs = listerspolicyv1.NewPodDisruptionBudgetLister(idx)
}

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// Every node has 4 cpu (testScheduler).
func TestPreemptionVictims(t *testing.T) {
	never := corev1.PreemptNever
	zone := func(n, z string) *corev1.Node { return st.MakeNode(n).Label("zone", z).Obj() }
	for _, tc := range []struct {
		name      string
		nodes     []*corev1.Node
		pods      []*corev1.Pod
		pdbs      []*policyv1.PodDisruptionBudget
		preemptor *corev1.Pod
		node      string   // "" when no preemption
		victims   []string // most important first
	}{{
		name:      "lower priority goes, the more important one is reprieved",
		nodes:     []*corev1.Node{st.MakeNode("a").Obj()},
		pods:      []*corev1.Pod{st.MakePod().Name("p1").Node("a").CPU("2").Priority(1).Obj(), st.MakePod().Name("p5").Node("a").CPU("2").Priority(5).Obj()},
		preemptor: st.MakePod().Name("hi").CPU("2").Priority(10).Obj(),
		node:      "a", victims: []string{"p1"},
	}, {
		name:      "equal priority is never a victim",
		nodes:     []*corev1.Node{st.MakeNode("a").Obj()},
		pods:      []*corev1.Pod{st.MakePod().Name("eq").Node("a").CPU("4").Priority(10).Obj()},
		preemptor: st.MakePod().Name("hi").CPU("1").Priority(10).Obj(),
	}, {
		name:  "preemptionPolicy Never",
		nodes: []*corev1.Node{st.MakeNode("a").Obj()},
		pods:  []*corev1.Pod{st.MakePod().Name("lo").Node("a").CPU("4").Priority(1).Obj()},
		preemptor: func() *corev1.Pod {
			p := st.MakePod().Name("hi").CPU("1").Priority(10).Obj()
			p.Spec.PreemptionPolicy = &never
			return p
		}(),
	}, {
		name:      "unresolvable nodes are not candidates",
		nodes:     []*corev1.Node{st.MakeNode("a").Label("disk", "hdd").Obj()},
		pods:      []*corev1.Pod{st.MakePod().Name("lo").Node("a").CPU("4").Priority(1).Obj()},
		preemptor: st.MakePod().Name("hi").CPU("1").Priority(10).NodeSelector("disk", "ssd").Obj(),
	}, {
		name:  "lowest highest-victim priority wins",
		nodes: []*corev1.Node{st.MakeNode("a").Obj(), st.MakeNode("b").Obj()},
		pods: []*corev1.Pod{st.MakePod().Name("pa").Node("a").CPU("4").Priority(5).Obj(),
			st.MakePod().Name("pb").Node("b").CPU("4").Priority(1).Obj()},
		preemptor: st.MakePod().Name("hi").CPU("1").Priority(10).Obj(),
		node:      "b", victims: []string{"pb"},
	}, {
		name:  "PDB violations avoided before priorities",
		nodes: []*corev1.Node{st.MakeNode("a").Obj(), st.MakeNode("b").Obj()},
		pods: []*corev1.Pod{st.MakePod().Name("db").Label("app", "db").Node("a").CPU("4").Priority(1).Obj(),
			st.MakePod().Name("web").Label("app", "web").Node("b").CPU("4").Priority(5).Obj()},
		pdbs:      []*policyv1.PodDisruptionBudget{pdb("db", st.Sel("app", "db"), 0)},
		preemptor: st.MakePod().Name("hi").CPU("1").Priority(10).Obj(),
		node:      "b", victims: []string{"web"},
	}, {
		name:  "a PDB with disruptions to spare is no violation",
		nodes: []*corev1.Node{st.MakeNode("a").Obj(), st.MakeNode("b").Obj()},
		pods: []*corev1.Pod{st.MakePod().Name("db").Label("app", "db").Node("a").CPU("4").Priority(1).Obj(),
			st.MakePod().Name("web").Label("app", "web").Node("b").CPU("4").Priority(5).Obj()},
		pdbs:      []*policyv1.PodDisruptionBudget{pdb("db", st.Sel("app", "db"), 1)},
		preemptor: st.MakePod().Name("hi").CPU("1").Priority(10).Obj(),
		node:      "a", victims: []string{"db"},
	}, {
		name:  "PDB-violating pods are reprieved first",
		nodes: []*corev1.Node{st.MakeNode("a").Obj()},
		pods: []*corev1.Pod{st.MakePod().Name("db").Label("app", "db").Node("a").CPU("2").Priority(1).Obj(),
			st.MakePod().Name("web").Node("a").CPU("2").Priority(5).Obj()},
		pdbs:      []*policyv1.PodDisruptionBudget{pdb("db", st.Sel("app", "db"), 0)},
		preemptor: st.MakePod().Name("hi").CPU("2").Priority(10).Obj(),
		node:      "a", victims: []string{"web"},
	}, {
		name:  "fewer victims at equal priority",
		nodes: []*corev1.Node{st.MakeNode("a").Obj(), st.MakeNode("b").Obj()},
		pods: []*corev1.Pod{st.MakePod().Name("a1").Node("a").CPU("2").Priority(1).Obj(), st.MakePod().Name("a2").Node("a").CPU("2").Priority(1).Obj(),
			st.MakePod().Name("b1").Node("b").CPU("4").Priority(1).Obj()},
		preemptor: st.MakePod().Name("hi").CPU("3").Priority(10).Obj(),
		node:      "b", victims: []string{"b1"},
	}, {
		name:  "the incoming pod's anti-affinity is cured by removing the pod it repels",
		nodes: []*corev1.Node{st.MakeNode("a").Obj()},
		pods: []*corev1.Pod{st.MakePod().Name("web").Label("app", "web").Node("a").CPU("100m").Priority(1).Obj(),
			st.MakePod().Name("other").Node("a").CPU("100m").Priority(1).Obj()},
		preemptor: st.MakePod().Name("hi").CPU("100m").Priority(10).RequiredAntiAffinity(st.Term(corev1.LabelHostname, "app", "web")).Obj(),
		node:      "a", victims: []string{"web"},
	}, {
		name:  "an existing pod's anti-affinity is cured by removing it",
		nodes: []*corev1.Node{st.MakeNode("a").Obj()},
		pods: []*corev1.Pod{st.MakePod().Name("loner").Node("a").CPU("100m").Priority(1).RequiredAntiAffinity(st.Term(corev1.LabelHostname, "app", "x")).Obj(),
			st.MakePod().Name("other").Node("a").CPU("100m").Priority(1).Obj()},
		preemptor: st.MakePod().Name("hi").Label("app", "x").CPU("100m").Priority(10).Obj(),
		node:      "a", victims: []string{"loner"},
	}, {
		name:  "topology spread: removing a matching pod evens the zones",
		nodes: []*corev1.Node{zone("a", "1"), zone("b", "2")},
		pods: []*corev1.Pod{st.MakePod().Name("s-hi").Label("app", "s").Node("a").CPU("100m").Priority(100).Obj(),
			st.MakePod().Name("s-lo").Label("app", "s").Node("a").CPU("100m").Priority(1).Obj(),
			st.MakePod().Name("big").Node("b").CPU("4").Priority(100).Obj()},
		preemptor: st.MakePod().Name("hi").Label("app", "s").CPU("100m").Priority(10).
			SpreadConstraint(2, "zone", corev1.DoNotSchedule, st.Sel("app", "s")).Obj(),
		node: "a", victims: []string{"s-lo"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := testScheduler(t, tc.nodes...)
			withPDBs(t, s, tc.pdbs...)
			for _, p := range tc.pods {
				s.cache.place(p)
			}
			r := s.pick(context.Background(), tc.preemptor)
			if r.host != "" {
				t.Fatalf("preemptor fits on %s without preemption", r.host)
			}
			if tc.node == "" {
				if r.preemption != nil {
					t.Fatalf("preempted %v on %s, want no preemption", names(r.preemption.victims), r.preemption.node)
				}
				return
			}
			if r.preemption == nil {
				t.Fatalf("no preemption (%s), want %v on %s", r.diagnosis.Message(r.total), tc.victims, tc.node)
			}
			if got := names(r.preemption.victims); r.preemption.node != tc.node || !slices.Equal(got, tc.victims) {
				t.Errorf("preempted %v on %s, want %v on %s", got, r.preemption.node, tc.victims, tc.node)
			}
		})
	}
}

func TestPickCandidate(t *testing.T) {
	now := time.Now()
	p := func(name string, prio int32, started time.Duration) *corev1.Pod {
		return st.MakePod().Name(name).Priority(prio).StartTime(now.Add(-started)).Obj()
	}
	c := func(node string, violations int, victims ...*corev1.Pod) candidate {
		return candidate{node: node, victims: victims, pdbViolations: violations}
	}
	for _, tc := range []struct {
		name  string
		cands []candidate
		want  string
	}{
		{"no victims at all", []candidate{c("a", 0, p("x", 1, 0)), c("b", 1)}, "b"},
		{"fewest PDB violations", []candidate{c("a", 1, p("x", 1, 0)), c("b", 0, p("y", 100, 0), p("z", 100, 0))}, "b"},
		{"lowest highest priority", []candidate{c("a", 0, p("x", 5, 0)), c("b", 0, p("y", 4, 0), p("z", 4, 0))}, "b"},
		{"smallest priority sum", []candidate{c("a", 0, p("x", 5, 0), p("x2", 4, 0)), c("b", 0, p("y", 5, 0), p("z", 1, 0))}, "b"},
		{"negative priorities add up", []candidate{c("a", 0, p("x", -5, 0), p("x2", -5, 0)), c("b", 0, p("y", -5, 0))}, "b"},
		{"fewest victims", []candidate{c("a", 0, p("x", 5, 0), p("x2", 0, 0)), c("b", 0, p("y", 5, 0))}, "b"},
		{"latest start of the top victims", []candidate{c("a", 0, p("x", 5, time.Hour)), c("b", 0, p("y", 5, time.Minute))}, "b"},
		{"first on a tie", []candidate{c("a", 0, p("x", 5, time.Hour)), c("b", 0, p("y", 5, time.Hour))}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pickCandidate(tc.cands, now); got.node != tc.want {
				t.Errorf("picked %s, want %s", got.node, tc.want)
			}
		})
	}
}

func TestSplitByPDB(t *testing.T) {
	pods := []*corev1.Pod{
		st.MakePod().Name("db-1").Label("app", "db").Obj(),
		st.MakePod().Name("db-2").Label("app", "db").Obj(),
		st.MakePod().Name("nolabels").Obj(),
		st.MakePod().Name("web").Label("app", "web").Obj(),
	}
	empty := pdb("empty", &metav1.LabelSelector{}, 0)
	disrupted := pdb("web", st.Sel("app", "web"), 0)
	disrupted.Status.DisruptedPods = map[string]metav1.Time{"web": metav1.Now()}
	violating, rest := splitByPDB(pods, []*policyv1.PodDisruptionBudget{pdb("db", st.Sel("app", "db"), 1), empty, disrupted})
	if got := names(violating); !slices.Equal(got, []string{"db-2"}) {
		t.Errorf("violating %v, want [db-2] (one disruption allowed)", got)
	}
	if got := names(rest); !slices.Equal(got, []string{"db-1", "nolabels", "web"}) {
		t.Errorf("non-violating %v", got)
	}
}

// A nominated pod's room is kept from pods of lower priority, not from
// pods of higher priority; it does not preempt again while its victims
// terminate; it goes to its node once they are gone.
func TestNominatedPodReservesRoom(t *testing.T) {
	s := testScheduler(t, st.MakeNode("a").Obj())
	ctx := context.Background()
	victim := st.MakePod().Name("lo").Node("a").CPU("3").Priority(1).Obj()
	s.cache.place(victim)
	hi := st.MakePod().Name("hi").CPU("3").Priority(10).Obj()
	r := s.pick(ctx, hi)
	if r.preemption == nil || r.preemption.node != "a" {
		t.Fatalf("no preemption on a: %+v", r)
	}
	s.cache.mu.Lock()
	delete(s.cache.preempting, key(hi)) // the API calls are done
	s.cache.mu.Unlock()

	// While the victim terminates, the preemptor waits.
	s.cache.place(st.MakePod().Name("lo").Node("a").CPU("3").Priority(1).Terminating().Obj())
	if r := s.pick(ctx, hi); r.host != "" || r.preemption != nil {
		t.Fatalf("preemptor with a terminating victim: host %q preemption %+v", r.host, r.preemption)
	}
	s.cache.remove(key(victim))

	if r := s.pick(ctx, st.MakePod().Name("mid").CPU("2").Priority(5).Obj()); r.host != "" || r.preemption != nil {
		t.Fatalf("lower-priority pod took the reserved room: host %q preemption %+v", r.host, r.preemption)
	}
	if r := s.pick(ctx, st.MakePod().Name("small").CPU("1").Priority(0).Obj()); r.host != "a" {
		t.Fatalf("pod fitting beside the reservation not placed: %s", r.diagnosis.Message(r.total))
	}
	if r := s.pick(ctx, hi); r.host != "a" {
		t.Fatalf("preemptor not placed on its node: %s", r.diagnosis.Message(r.total))
	}
	assumed := hi.DeepCopy()
	assumed.Spec.NodeName = "a"
	s.cache.assume(assumed)
	if n := s.cache.nominatedNode(key(hi)); n != "" {
		t.Errorf("still nominated to %s after being assumed", n)
	}
}
