package interpodaffinity

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	st "github.com/skiff-sh/skiff/internal/scheduler/schedtest"
)

const zone = corev1.LabelTopologyZone

// nodes: n1 and n2 in zone a, n3 in zone b, n4 without a zone.
func nodes() []*corev1.Node {
	return []*corev1.Node{
		st.MakeNode("n1").Label(zone, "a").Obj(), st.MakeNode("n2").Label(zone, "a").Obj(),
		st.MakeNode("n3").Label(zone, "b").Obj(), st.MakeNode("n4").Obj(),
	}
}

func namespaces(t *testing.T) listerscorev1.NamespaceLister {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"env": "prod"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "dev", Labels: map[string]string{"env": "dev"}}},
	} {
		if err := idx.Add(ns); err != nil {
			t.Fatal(err)
		}
	}
	return listerscorev1.NewNamespaceLister(idx)
}

func TestFilter(t *testing.T) {
	web := func(name, node string) *corev1.Pod {
		return st.MakePod().Name(name).Label("app", "web").Node(node).Obj()
	}
	db := func(name, node string) *corev1.Pod {
		return st.MakePod().Name(name).Label("app", "db").Node(node).Obj()
	}
	prodTerm := st.Term(zone, "app", "db")
	prodTerm.NamespaceSelector = st.Sel("env", "prod")
	versioned := st.Term(corev1.LabelHostname, "app", "web")
	versioned.MatchLabelKeys = []string{"version"}

	const (
		aff      = ErrReasonAffinityRulesNotMatch
		anti     = ErrReasonAntiAffinityRulesNotMatch
		existing = ErrReasonExistingAntiAffinityRulesNotMatch
	)
	tests := []struct {
		name  string
		pod   *corev1.Pod
		pods  []*corev1.Pod
		fails map[string]string // node -> reason; the others pass
	}{
		{"no terms anywhere", st.MakePod().Obj(), []*corev1.Pod{web("w", "n1")}, nil},
		{"affinity to a zone with a db pod", st.MakePod().RequiredAffinity(st.Term(zone, "app", "db")).Obj(), []*corev1.Pod{db("d", "n1")},
			map[string]string{"n3": aff, "n4": aff}},
		{"affinity, no match anywhere, pod not matching itself", st.MakePod().RequiredAffinity(st.Term(zone, "app", "db")).Obj(), []*corev1.Pod{web("w", "n1")},
			map[string]string{"n1": aff, "n2": aff, "n3": aff, "n4": aff}},
		{"first pod of a self-affine group goes where the key is", st.MakePod().Label("app", "db").RequiredAffinity(st.Term(zone, "app", "db")).Obj(), nil,
			map[string]string{"n4": aff}},
		{"self-affine pod follows the first one", st.MakePod().Label("app", "db").RequiredAffinity(st.Term(zone, "app", "db")).Obj(), []*corev1.Pod{db("d", "n3")},
			map[string]string{"n1": aff, "n2": aff, "n4": aff}},
		{"affinity: existing pod must match every term", st.MakePod().RequiredAffinity(st.Term(zone, "app", "db")).RequiredAffinity(st.Term(corev1.LabelHostname, "tier", "x")).Obj(),
			[]*corev1.Pod{db("d", "n1")}, map[string]string{"n1": aff, "n2": aff, "n3": aff, "n4": aff}},
		{"affinity in another namespace does not count", st.MakePod().RequiredAffinity(st.Term(zone, "app", "db")).Obj(),
			[]*corev1.Pod{st.MakePod().Name("d").Namespace("prod").Label("app", "db").Node("n1").Obj()}, map[string]string{"n1": aff, "n2": aff, "n3": aff, "n4": aff}},
		{"namespaceSelector picks the namespaces", st.MakePod().RequiredAffinity(prodTerm).Obj(), []*corev1.Pod{
			st.MakePod().Name("d1").Namespace("prod").Label("app", "db").Node("n3").Obj(),
			st.MakePod().Name("d2").Namespace("dev").Label("app", "db").Node("n1").Obj(),
		}, map[string]string{"n1": aff, "n2": aff, "n4": aff}},
		{"anti-affinity on hostname", st.MakePod().Label("app", "web").RequiredAntiAffinity(st.Term(corev1.LabelHostname, "app", "web")).Obj(),
			[]*corev1.Pod{web("w", "n1")}, map[string]string{"n1": anti}},
		{"anti-affinity on zone spares nodes without the key", st.MakePod().RequiredAntiAffinity(st.Term(zone, "app", "web")).Obj(),
			[]*corev1.Pod{web("w", "n1")}, map[string]string{"n1": anti, "n2": anti}},
		{"terminating pods still count", st.MakePod().RequiredAntiAffinity(st.Term(corev1.LabelHostname, "app", "web")).Obj(),
			[]*corev1.Pod{st.MakePod().Name("w").Label("app", "web").Node("n2").Terminating().Obj()}, map[string]string{"n2": anti}},
		{"matchLabelKeys narrows to the pod's version", st.MakePod().Label("app", "web").Label("version", "v2").RequiredAntiAffinity(versioned).Obj(),
			[]*corev1.Pod{
				st.MakePod().Name("old").Label("app", "web").Label("version", "v1").Node("n1").Obj(),
				st.MakePod().Name("new").Label("app", "web").Label("version", "v2").Node("n2").Obj(),
			}, map[string]string{"n2": anti}},
		{"existing pod's anti-affinity rejects the incoming pod", st.MakePod().Label("app", "web").Obj(),
			[]*corev1.Pod{st.MakePod().Name("e").Node("n3").RequiredAntiAffinity(st.Term(zone, "app", "web")).Obj()}, map[string]string{"n3": existing}},
		{"existing pod's anti-affinity for other pods", st.MakePod().Label("app", "db").Obj(),
			[]*corev1.Pod{st.MakePod().Name("e").Node("n3").RequiredAntiAffinity(st.Term(zone, "app", "web")).Obj()}, nil},
		{"existing pod's anti-affinity is namespaced", st.MakePod().Namespace("dev").Label("app", "web").Obj(),
			[]*corev1.Pod{st.MakePod().Name("e").Node("n3").RequiredAntiAffinity(st.Term(zone, "app", "web")).Obj()}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := st.Snapshot(nodes(), tt.pods)
			snap.Listers.Namespaces = namespaces(t)
			got := st.Filter(New(), tt.pod, snap)
			for node, s := range got {
				want := tt.fails[node]
				switch {
				case want == "" && !s.IsSuccess():
					t.Errorf("%s rejected: %v", node, s.Reasons)
				case want != "" && (s.IsSuccess() || s.Reasons[0] != want):
					t.Errorf("%s: got %+v, want %q", node, s, want)
				case want == aff && s.Code != framework.UnschedulableAndUnresolvable, (want == anti || want == existing) && s.Code != framework.Unschedulable:
					t.Errorf("%s: code %d for %q", node, s.Code, want)
				}
			}
		})
	}
}

func TestPreFilterSkipsWhenNothingApplies(t *testing.T) {
	snap := st.Snapshot(nodes(), []*corev1.Pod{st.MakePod().Name("e").Node("n1").PreferredAntiAffinity(1, st.Term(zone, "app", "web")).Obj()})
	if s := New().PreFilter(t.Context(), framework.NewCycleState(), st.MakePod().Label("app", "web").Obj(), snap); !s.IsSkip() {
		t.Errorf("PreFilter with only preferred terms around: %+v, want Skip", s)
	}
	if snap.PodsWithAffinity != 1 || snap.PodsWithRequiredAntiAffinity != 0 {
		t.Errorf("counts %d/%d", snap.PodsWithAffinity, snap.PodsWithRequiredAntiAffinity)
	}
}

func TestScore(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		pods []*corev1.Pod
		want map[string]int64
	}{
		{"no terms", st.MakePod().Obj(), []*corev1.Pod{st.MakePod().Name("d").Label("app", "db").Node("n1").Obj()},
			map[string]int64{"n1": 0, "n2": 0, "n3": 0, "n4": 0}},
		{"preferred affinity to the db zone", st.MakePod().PreferredAffinity(5, st.Term(zone, "app", "db")).Obj(),
			[]*corev1.Pod{st.MakePod().Name("d").Label("app", "db").Node("n1").Obj()},
			map[string]int64{"n1": 100, "n2": 100, "n3": 0, "n4": 0}},
		{"preferred anti-affinity away from web pods", st.MakePod().PreferredAntiAffinity(5, st.Term(corev1.LabelHostname, "app", "web")).Obj(),
			[]*corev1.Pod{st.MakePod().Name("w").Label("app", "web").Node("n1").Obj(), st.MakePod().Name("w2").Label("app", "web").Node("n1").Obj(),
				st.MakePod().Name("w3").Label("app", "web").Node("n2").Obj()},
			map[string]int64{"n1": 0, "n2": 50, "n3": 100, "n4": 100}},
		{"weights add up", st.MakePod().PreferredAffinity(8, st.Term(zone, "app", "db")).PreferredAffinity(2, st.Term(zone, "app", "cache")).Obj(),
			[]*corev1.Pod{st.MakePod().Name("d").Label("app", "db").Node("n1").Obj(), st.MakePod().Name("c").Label("app", "cache").Node("n3").Obj()},
			map[string]int64{"n1": 100, "n2": 100, "n3": 25, "n4": 0}},
		{"existing pod's preferred anti-affinity repels", st.MakePod().Label("app", "web").Obj(),
			[]*corev1.Pod{st.MakePod().Name("e").Node("n3").PreferredAntiAffinity(3, st.Term(zone, "app", "web")).Obj()},
			map[string]int64{"n1": 100, "n2": 100, "n3": 0, "n4": 100}},
		{"existing pod's required affinity attracts (hard weight)", st.MakePod().Label("app", "db").Obj(),
			[]*corev1.Pod{st.MakePod().Name("e").Node("n3").RequiredAffinity(st.Term(zone, "app", "db")).Obj()},
			map[string]int64{"n1": 0, "n2": 0, "n3": 100, "n4": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := st.Snapshot(nodes(), tt.pods)
			got := st.Score(New(), tt.pod, snap)
			for n, w := range tt.want {
				if got[n] != w {
					t.Errorf("scores %v, want %v", got, tt.want)
					break
				}
			}
		})
	}
}
