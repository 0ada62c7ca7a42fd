package podtopologyspread

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	st "github.com/skiff-sh/skiff/internal/scheduler/schedtest"
)

const zone = corev1.LabelTopologyZone

// nodes: n1, n2 in zone a; n3, n4 in zone b (n4 tainted); n5 without a
// zone. n2 and n3 have disk=ssd.
func nodes() []*corev1.Node {
	return []*corev1.Node{
		st.MakeNode("n1").Label(zone, "a").Obj(), st.MakeNode("n2").Label(zone, "a").Label("disk", "ssd").Obj(),
		st.MakeNode("n3").Label(zone, "b").Label("disk", "ssd").Obj(),
		st.MakeNode("n4").Label(zone, "b").Taint("dedicated", "x", corev1.TaintEffectNoSchedule).Obj(),
		st.MakeNode("n5").Obj(),
	}
}

// foos places one app=foo pod per node name given.
func foos(on ...string) []*corev1.Pod {
	var out []*corev1.Pod
	for i, n := range on {
		out = append(out, st.MakePod().Name("foo"+string(rune('a'+i))).Label("app", "foo").Node(n).Obj())
	}
	return out
}

func TestFilter(t *testing.T) {
	foo := st.Sel("app", "foo")
	spread := func(skew int32, key string) *st.PodWrapper {
		return st.MakePod().Label("app", "foo").SpreadConstraint(skew, key, corev1.DoNotSchedule, foo)
	}
	with := func(mutate func(*corev1.TopologySpreadConstraint)) *corev1.Pod {
		p := spread(1, zone).Obj()
		mutate(&p.Spec.TopologySpreadConstraints[0])
		return p
	}
	honor, ignore := corev1.NodeInclusionPolicyHonor, corev1.NodeInclusionPolicyIgnore
	three := int32(3)
	const (
		skew    = ErrReasonConstraintsNotMatch
		missing = ErrReasonNodeLabelNotMatch
	)
	tests := []struct {
		name  string
		pod   *corev1.Pod
		pods  []*corev1.Pod
		fails map[string]string
	}{
		{"no constraints", st.MakePod().Obj(), foos("n1", "n1", "n1"), nil},
		{"ScheduleAnyway does not filter", st.MakePod().Label("app", "foo").SpreadConstraint(1, zone, corev1.ScheduleAnyway, foo).Obj(), foos("n1", "n1"), nil},
		{"zone skew", spread(1, zone).Obj(), foos("n1", "n1", "n3"), map[string]string{"n1": skew, "n2": skew, "n5": missing}},
		{"maxSkew 2 allows it", spread(2, zone).Obj(), foos("n1", "n1", "n3"), map[string]string{"n5": missing}},
		{"hostname skew", spread(1, corev1.LabelHostname).Obj(), foos("n1"), map[string]string{"n1": skew}},
		{"a pod outside the selector adds nothing", st.MakePod().SpreadConstraint(1, zone, corev1.DoNotSchedule, foo).Obj(), foos("n1"),
			map[string]string{"n5": missing}},
		{"minDomains above the domain count makes the minimum 0", with(func(c *corev1.TopologySpreadConstraint) { c.MinDomains = &three }),
			foos("n1", "n3"), map[string]string{"n1": skew, "n2": skew, "n3": skew, "n4": skew, "n5": missing}},
		{"nodeAffinityPolicy Honor counts only nodes the pod may use", func() *corev1.Pod {
			p := spread(1, zone).NodeSelector("disk", "ssd").Obj()
			return p
		}(), foos("n1", "n1", "n1"), map[string]string{"n5": missing}},
		{"nodeAffinityPolicy Ignore counts every node", func() *corev1.Pod {
			p := spread(1, zone).NodeSelector("disk", "ssd").Obj()
			p.Spec.TopologySpreadConstraints[0].NodeAffinityPolicy = &ignore
			return p
		}(), foos("n1", "n1", "n1"), map[string]string{"n1": skew, "n2": skew, "n5": missing}},
		{"nodeTaintsPolicy Ignore (default) counts tainted nodes", spread(1, zone).Obj(), foos("n4", "n4"),
			map[string]string{"n3": skew, "n4": skew, "n5": missing}},
		{"nodeTaintsPolicy Honor leaves tainted nodes out", with(func(c *corev1.TopologySpreadConstraint) { c.NodeTaintsPolicy = &honor }),
			foos("n4", "n4"), map[string]string{"n5": missing}},
		{"matchLabelKeys narrows to the pod's revision", func() *corev1.Pod {
			p := spread(1, zone).Label("rev", "2").Obj()
			p.Spec.TopologySpreadConstraints[0].MatchLabelKeys = []string{"rev"}
			return p
		}(), append(foos("n1", "n1"), st.MakePod().Name("new").Label("app", "foo").Label("rev", "2").Node("n3").Obj()),
			map[string]string{"n3": skew, "n4": skew, "n5": missing}},
		{"terminating pods do not count", spread(1, zone).Obj(),
			[]*corev1.Pod{st.MakePod().Name("t1").Label("app", "foo").Node("n1").Terminating().Obj(), st.MakePod().Name("t2").Label("app", "foo").Node("n1").Terminating().Obj()},
			map[string]string{"n5": missing}},
		{"other namespaces do not count", spread(1, zone).Obj(),
			[]*corev1.Pod{st.MakePod().Name("o1").Namespace("other").Label("app", "foo").Node("n1").Obj(), st.MakePod().Name("o2").Namespace("other").Label("app", "foo").Node("n1").Obj()},
			map[string]string{"n5": missing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := st.Filter(New(), tt.pod, st.Snapshot(nodes(), tt.pods))
			for node, s := range got {
				want := tt.fails[node]
				switch {
				case want == "" && !s.IsSuccess():
					t.Errorf("%s rejected: %v", node, s.Reasons)
				case want != "" && (s.IsSuccess() || s.Reasons[0] != want):
					t.Errorf("%s: got %+v, want %q", node, s, want)
				case want == missing && s.Code != framework.UnschedulableAndUnresolvable, want == skew && s.Code != framework.Unschedulable:
					t.Errorf("%s: code %d for %q", node, s.Code, want)
				}
			}
		})
	}
}

func listers(t *testing.T, objs ...interface{}) framework.Listers {
	svc := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	rs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, o := range objs {
		var err error
		switch o.(type) {
		case *corev1.Service:
			err = svc.Add(o)
		case *appsv1.ReplicaSet:
			err = rs.Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return framework.Listers{Services: listerscorev1.NewServiceLister(svc), ReplicaSets: listersappsv1.NewReplicaSetLister(rs)}
}

func TestScore(t *testing.T) {
	foo := st.Sel("app", "foo")
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: appsv1.ReplicaSetSpec{Selector: foo}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "foo"}}}
	headless := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "none", Namespace: "default"}}
	tests := []struct {
		name    string
		pod     *corev1.Pod
		pods    []*corev1.Pod
		listers framework.Listers
		want    map[string]int64
	}{
		{"zone: fewer matching pods is better; nodes without the key ignored",
			st.MakePod().Label("app", "foo").SpreadConstraint(1, zone, corev1.ScheduleAnyway, foo).Obj(), foos("n1", "n1", "n3"), framework.Listers{},
			map[string]int64{"n1": 33, "n2": 33, "n3": 100, "n4": 100, "n5": 0}},
		{"hostname", st.MakePod().Label("app", "foo").SpreadConstraint(1, corev1.LabelHostname, corev1.ScheduleAnyway, foo).Obj(), foos("n1"), framework.Listers{},
			map[string]int64{"n1": 0, "n2": 100, "n3": 100, "n4": 100, "n5": 100}},
		{"DoNotSchedule constraints do not score", st.MakePod().Label("app", "foo").SpreadConstraint(1, zone, corev1.DoNotSchedule, foo).Obj(), foos("n1"), framework.Listers{},
			map[string]int64{"n1": 0, "n2": 0, "n3": 0, "n4": 0, "n5": 0}},
		{"no constraints, no owner, no service: nothing", st.MakePod().Label("app", "foo").Obj(), foos("n1", "n1"), listers(t, headless),
			map[string]int64{"n1": 0, "n2": 0, "n3": 0, "n4": 0, "n5": 0}},
		{"system defaults from the ReplicaSet", st.MakePod().Label("app", "foo").OwnedBy("apps/v1", "ReplicaSet", "web").Obj(), foos("n1", "n1"), listers(t, rs),
			map[string]int64{"n1": 15, "n2": 46, "n3": 69, "n4": 69, "n5": 100}},
		{"system defaults from a Service", st.MakePod().Label("app", "foo").Obj(), foos("n1", "n1"), listers(t, svc, headless),
			map[string]int64{"n1": 15, "n2": 46, "n3": 69, "n4": 69, "n5": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := st.Snapshot(nodes(), tt.pods)
			snap.Listers = tt.listers
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
