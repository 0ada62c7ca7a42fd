package daemonset

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

var t0 = time.Unix(100000, 0)

func makeNode(name string, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
}

func makeDS(name string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	one := intstr.FromInt32(1)
	zero := intstr.FromInt32(0)
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: "uid-ds", Generation: 1},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}}},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one, MaxSurge: &zero}},
		},
	}
}

func TestPlacement(t *testing.T) {
	sel := makeDS("d")
	sel.Spec.Template.Spec.NodeSelector = map[string]string{"role": "x"}
	aff := makeDS("d")
	aff.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}}}}}
	host := makeDS("d")
	host.Spec.Template.Spec.HostNetwork = true
	taint := func(k string, e corev1.TaintEffect) corev1.Taint { return corev1.Taint{Key: k, Effect: e} }
	tests := []struct {
		name      string
		ds        *appsv1.DaemonSet
		node      *corev1.Node
		run, keep bool
	}{
		{"plain", makeDS("d"), makeNode("n", nil), true, true},
		{"selector matches", sel, makeNode("n", map[string]string{"role": "x"}), true, true},
		{"selector does not match", sel, makeNode("n", map[string]string{"role": "y"}), false, false},
		{"affinity matches", aff, makeNode("n", map[string]string{"zone": "a"}), true, true},
		{"affinity does not match", aff, makeNode("n", map[string]string{"zone": "b"}), false, false},
		{"NoSchedule taint: keep running", makeDS("d"), makeNode("n", nil, taint("k", corev1.TaintEffectNoSchedule)), false, true},
		{"NoExecute taint: evict", makeDS("d"), makeNode("n", nil, taint("k", corev1.TaintEffectNoExecute)), false, false},
		{"PreferNoSchedule ignored", makeDS("d"), makeNode("n", nil, taint("k", corev1.TaintEffectPreferNoSchedule)), true, true},
		{"not-ready tolerated", makeDS("d"), makeNode("n", nil, taint(taintNotReady, corev1.TaintEffectNoExecute)), true, true},
		{"unreachable tolerated", makeDS("d"), makeNode("n", nil, taint(taintUnreachable, corev1.TaintEffectNoExecute)), true, true},
		{"unschedulable tolerated", makeDS("d"), makeNode("n", nil, taint(taintUnschedulable, corev1.TaintEffectNoSchedule)), true, true},
		{"disk pressure tolerated", makeDS("d"), makeNode("n", nil, taint(taintDiskPressure, corev1.TaintEffectNoSchedule)), true, true},
		{"network-unavailable not tolerated", makeDS("d"), makeNode("n", nil, taint(taintNetworkUnavailable, corev1.TaintEffectNoSchedule)), false, true},
		{"network-unavailable tolerated with hostNetwork", host, makeNode("n", nil, taint(taintNetworkUnavailable, corev1.TaintEffectNoSchedule)), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, keep := placement(templatePod(tt.ds), tt.node)
			if run != tt.run || keep != tt.keep {
				t.Fatalf("run %v keep %v, want %v %v", run, keep, tt.run, tt.keep)
			}
		})
	}
}

func TestNewPodPinsNode(t *testing.T) {
	ds := makeDS("d")
	ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}}}}}
	p := newPod(ds, "n1", "h1")
	terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 1 || len(terms[0].MatchFields) != 1 || terms[0].MatchFields[0].Values[0] != "n1" {
		t.Fatalf("terms %+v", terms)
	}
	if targetNode(p) != "n1" || p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != "h1" || p.Labels[TemplateGenerationLabel] != "1" {
		t.Fatalf("target %q labels %v", targetNode(p), p.Labels)
	}
	if len(p.Spec.Tolerations) != 6 {
		t.Fatalf("tolerations %+v", p.Spec.Tolerations)
	}
	if ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields != nil {
		t.Fatal("template mutated")
	}
}

type harness struct {
	t   *testing.T
	cs  *fake.Clientset
	inf informers.SharedInformerFactory
	c   *Controller
	now time.Time
}

func newHarness(t *testing.T, ds *appsv1.DaemonSet, nodes ...*corev1.Node) *harness {
	t.Helper()
	objs := []runtime.Object{ds}
	for _, n := range nodes {
		objs = append(objs, n)
	}
	cs := fake.NewClientset(objs...)
	var seq atomic.Int32
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			n := seq.Add(1)
			p.Name = fmt.Sprintf("%s%d", p.GenerateName, n)
			p.UID = types.UID("uid-" + p.Name)
			p.CreationTimestamp = metav1.NewTime(t0.Add(time.Duration(n) * time.Second))
		}
		return false, nil, nil
	})
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = &record.FakeRecorder{}
	h := &harness{t: t, cs: cs, inf: inf, c: c, now: t0.Add(time.Hour)}
	c.now = func() time.Time { return h.now }
	return h
}

func (h *harness) refresh() {
	h.t.Helper()
	ctx := context.Background()
	ds, _ := h.cs.AppsV1().DaemonSets("ns").List(ctx, metav1.ListOptions{})
	pods, _ := h.cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
	revs, _ := h.cs.AppsV1().ControllerRevisions("ns").List(ctx, metav1.ListOptions{})
	nodes, _ := h.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	var a, b, c, d []any
	for i := range ds.Items {
		a = append(a, &ds.Items[i])
	}
	for i := range pods.Items {
		b = append(b, &pods.Items[i])
	}
	for i := range revs.Items {
		c = append(c, &revs.Items[i])
	}
	for i := range nodes.Items {
		d = append(d, &nodes.Items[i])
	}
	for _, x := range []struct {
		store interface{ Replace([]any, string) error }
		items []any
	}{
		{h.inf.Apps().V1().DaemonSets().Informer().GetIndexer(), a},
		{h.inf.Core().V1().Pods().Informer().GetIndexer(), b},
		{h.inf.Apps().V1().ControllerRevisions().Informer().GetIndexer(), c},
		{h.inf.Core().V1().Nodes().Informer().GetIndexer(), d},
	} {
		if err := x.store.Replace(x.items, ""); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) step() {
	h.t.Helper()
	h.refresh()
	h.c.exp = controller.NewExpectations()
	if err := h.c.sync(context.Background(), "ns/d"); err != nil {
		h.t.Fatal(err)
	}
}

// bindAndReady plays scheduler and kubelet: pods go to their target node,
// Running and Ready.
func (h *harness) bindAndReady() {
	h.t.Helper()
	for _, p := range h.pods() {
		if controller.IsPodReady(p) {
			continue
		}
		p.Spec.NodeName = targetNode(p)
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0)}}
		if _, err := h.cs.CoreV1().Pods("ns").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) pods() []*corev1.Pod {
	l, err := h.cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*corev1.Pod
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	return out
}

// placed lists node:hash for every pod, sorted.
func (h *harness) placed() []string {
	var out []string
	for _, p := range h.pods() {
		out = append(out, targetNode(p)+":"+hashOf(p))
	}
	sort.Strings(out)
	return out
}

func (h *harness) ds() *appsv1.DaemonSet {
	d, err := h.cs.AppsV1().DaemonSets("ns").Get(context.Background(), "d", metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) update(f func(*appsv1.DaemonSet)) {
	d := h.ds()
	f(d)
	d.Generation++
	if _, err := h.cs.AppsV1().DaemonSets("ns").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func nodesOf(h *harness) []string {
	var out []string
	for _, p := range h.pods() {
		out = append(out, targetNode(p))
	}
	sort.Strings(out)
	return out
}

func eq(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestOnePodPerEligibleNode(t *testing.T) {
	ds := makeDS("d")
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"role": "x"}
	x := map[string]string{"role": "x"}
	h := newHarness(t, ds, makeNode("n1", x), makeNode("n2", x), makeNode("n3", map[string]string{"role": "y"}))
	h.step()
	h.step()
	if got := nodesOf(h); !eq(got, []string{"n1", "n2"}) {
		t.Fatalf("pods on %v", got)
	}
	h.bindAndReady()
	h.step()
	st := h.ds().Status
	if st.DesiredNumberScheduled != 2 || st.CurrentNumberScheduled != 2 || st.NumberReady != 2 || st.NumberAvailable != 2 ||
		st.UpdatedNumberScheduled != 2 || st.NumberUnavailable != 0 || st.NumberMisscheduled != 0 || st.ObservedGeneration != 1 {
		t.Fatalf("status %+v", st)
	}

	// n3 starts matching, n2 stops, n1 goes away.
	ctx := context.Background()
	if _, err := h.cs.CoreV1().Nodes().Update(ctx, makeNode("n3", x), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cs.CoreV1().Nodes().Update(ctx, makeNode("n2", nil), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.cs.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.step()
	if got := nodesOf(h); !eq(got, []string{"n3"}) {
		t.Fatalf("pods on %v, want only n3", got)
	}
}

func TestRollingUpdateMaxUnavailable(t *testing.T) {
	h := newHarness(t, makeDS("d"), makeNode("n1", nil), makeNode("n2", nil), makeNode("n3", nil))
	h.step()
	h.bindAndReady()
	h.step()
	old := hashOf(h.pods()[0])
	h.update(func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = "img:2" })
	for i := 0; i < 3; i++ {
		h.step() // delete one old pod
		if n := len(h.pods()); n != 2 {
			t.Fatalf("round %d: %d pods, want 2 (one node down at a time)", i, n)
		}
		h.step() // replace it
		h.step() // nothing until ready
		if n := len(h.pods()); n != 3 {
			t.Fatalf("round %d: %d pods after replace", i, n)
		}
		h.bindAndReady()
	}
	h.step()
	for _, p := range h.pods() {
		if hashOf(p) == old || p.Spec.Containers[0].Image != "img:2" {
			t.Fatalf("pod %s still old", p.Name)
		}
	}
	st := h.ds().Status
	if st.UpdatedNumberScheduled != 3 || st.NumberAvailable != 3 {
		t.Fatalf("status %+v", st)
	}
	revs, _ := h.cs.AppsV1().ControllerRevisions("ns").List(context.Background(), metav1.ListOptions{})
	if len(revs.Items) != 2 {
		t.Fatalf("%d revisions, want 2", len(revs.Items))
	}
}

func TestRollingUpdateSurge(t *testing.T) {
	ds := makeDS("d")
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxSurge: &one, MaxUnavailable: &zero}
	h := newHarness(t, ds, makeNode("n1", nil), makeNode("n2", nil))
	h.step()
	h.bindAndReady()
	h.update(func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = "img:2" })
	h.step()
	if n := len(h.pods()); n != 3 {
		t.Fatalf("%d pods, want 3 (one surge pod)", n)
	}
	h.step()
	if n := len(h.pods()); n != 3 {
		t.Fatalf("%d pods: old pod deleted before its replacement was ready", n)
	}
	for i := 0; i < 4; i++ {
		h.bindAndReady()
		h.step()
	}
	cur := h.ds().Status
	if got := h.placed(); len(got) != 2 || cur.UpdatedNumberScheduled != 2 {
		t.Fatalf("pods %v status %+v", got, cur)
	}
}

func TestOnDelete(t *testing.T) {
	ds := makeDS("d")
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	h := newHarness(t, ds, makeNode("n1", nil))
	h.step()
	h.bindAndReady()
	before := h.pods()[0].Name
	h.update(func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = "img:2" })
	h.step()
	h.step()
	if p := h.pods(); len(p) != 1 || p[0].Name != before {
		t.Fatalf("pods changed under OnDelete")
	}
	if st := h.ds().Status; st.UpdatedNumberScheduled != 0 {
		t.Fatalf("updated %d, want 0", st.UpdatedNumberScheduled)
	}
}
