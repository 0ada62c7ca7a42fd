package statefulset

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

var t0 = time.Unix(100000, 0)

// setBuilder makes StatefulSets for tests.
type setBuilder struct{ s *appsv1.StatefulSet }

func makeSet(name string, n int32) *setBuilder {
	labels := map[string]string{"app": name}
	zero := int32(0)
	return &setBuilder{&appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &n, ServiceName: "svc", Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}}},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &zero}},
		},
	}}
}

func (b *setBuilder) parallel() *setBuilder {
	b.s.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	return b
}

func (b *setBuilder) claim(name string) *setBuilder {
	b.s.Spec.VolumeClaimTemplates = append(b.s.Spec.VolumeClaimTemplates, corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	})
	return b
}

func (b *setBuilder) obj() *appsv1.StatefulSet { return b.s }

type harness struct {
	t   *testing.T
	cs  *fake.Clientset
	inf informers.SharedInformerFactory
	c   *Controller
	key string
}

func newHarness(t *testing.T, s *appsv1.StatefulSet) *harness {
	t.Helper()
	cs := fake.NewClientset(s)
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = &record.FakeRecorder{}
	c.now = func() time.Time { return t0 }
	return &harness{t: t, cs: cs, inf: inf, c: c, key: s.Namespace + "/" + s.Name}
}

// refresh loads the informer caches from the fake API.
func (h *harness) refresh() {
	h.t.Helper()
	ctx := context.Background()
	load := func(store interface{ Replace([]any, string) error }, objs []runtime.Object) {
		items := make([]any, len(objs))
		for i, o := range objs {
			items[i] = o
		}
		if err := store.Replace(items, ""); err != nil {
			h.t.Fatal(err)
		}
	}
	sets, _ := h.cs.AppsV1().StatefulSets("ns").List(ctx, metav1.ListOptions{})
	pods, _ := h.cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
	revs, _ := h.cs.AppsV1().ControllerRevisions("ns").List(ctx, metav1.ListOptions{})
	pvcs, _ := h.cs.CoreV1().PersistentVolumeClaims("ns").List(ctx, metav1.ListOptions{})
	var so, po, ro, co []runtime.Object
	for i := range sets.Items {
		so = append(so, &sets.Items[i])
	}
	for i := range pods.Items {
		po = append(po, &pods.Items[i])
	}
	for i := range revs.Items {
		ro = append(ro, &revs.Items[i])
	}
	for i := range pvcs.Items {
		co = append(co, &pvcs.Items[i])
	}
	load(h.inf.Apps().V1().StatefulSets().Informer().GetIndexer(), so)
	load(h.inf.Core().V1().Pods().Informer().GetIndexer(), po)
	load(h.inf.Apps().V1().ControllerRevisions().Informer().GetIndexer(), ro)
	load(h.inf.Core().V1().PersistentVolumeClaims().Informer().GetIndexer(), co)
}

// step runs one sync against a fresh cache.
func (h *harness) step() {
	h.t.Helper()
	h.refresh()
	h.c.exp = controller.NewExpectations()
	if err := h.c.sync(context.Background(), h.key); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) pods() map[string]*corev1.Pod {
	h.t.Helper()
	l, err := h.cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range l.Items {
		out[l.Items[i].Name] = &l.Items[i]
	}
	return out
}

func (h *harness) names() []string {
	var out []string
	for n := range h.pods() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ready makes every pod Running and Ready (for a minute).
func (h *harness) ready() {
	h.t.Helper()
	for _, p := range h.pods() {
		if controller.IsPodReady(p) {
			continue
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(-time.Minute))}}
		if _, err := h.cs.CoreV1().Pods("ns").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) set() *appsv1.StatefulSet {
	s, err := h.cs.AppsV1().StatefulSets("ns").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) update(f func(*appsv1.StatefulSet)) {
	s := h.set()
	f(s)
	s.Generation++
	if _, err := h.cs.AppsV1().StatefulSets("ns").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOrderedReadyCreatesInOrder(t *testing.T) {
	h := newHarness(t, makeSet("web", 3).claim("data").obj())
	for i, want := range [][]string{{"web-0"}, {"web-0", "web-1"}, {"web-0", "web-1", "web-2"}} {
		h.step()
		h.step() // nothing more until the last pod is ready
		if got := h.names(); !equal(got, want) {
			t.Fatalf("step %d: pods %v, want %v", i, got, want)
		}
		h.ready()
	}
	p := h.pods()["web-1"]
	for k, v := range map[string]string{appsv1.StatefulSetPodNameLabel: "web-1", appsv1.PodIndexLabel: "1", "app": "web"} {
		if p.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, p.Labels[k], v)
		}
	}
	if p.Labels[appsv1.StatefulSetRevisionLabel] == "" || p.Spec.Hostname != "web-1" || p.Spec.Subdomain != "svc" {
		t.Errorf("identity: labels %v hostname %q subdomain %q", p.Labels, p.Spec.Hostname, p.Spec.Subdomain)
	}
	if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].PersistentVolumeClaim == nil || p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-web-1" {
		t.Errorf("volumes %+v", p.Spec.Volumes)
	}
	for i := 0; i < 3; i++ {
		if _, err := h.cs.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), claimName(h.set(), "data", i), metav1.GetOptions{}); err != nil {
			t.Errorf("claim %d: %v", i, err)
		}
	}
	h.step()
	st := h.set().Status
	if st.Replicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.CurrentReplicas != 3 || st.UpdatedReplicas != 3 ||
		st.CurrentRevision == "" || st.CurrentRevision != st.UpdateRevision || st.ObservedGeneration != 1 {
		t.Errorf("status %+v", st)
	}
}

func TestParallelCreatesAll(t *testing.T) {
	h := newHarness(t, makeSet("web", 3).parallel().obj())
	h.step()
	if got := h.names(); !equal(got, []string{"web-0", "web-1", "web-2"}) {
		t.Fatalf("pods %v", got)
	}
}

func TestScaleDownInReverseKeepsClaims(t *testing.T) {
	h := newHarness(t, makeSet("web", 3).parallel().claim("data").obj())
	h.step()
	h.ready()
	h.update(func(s *appsv1.StatefulSet) {
		one := int32(1)
		s.Spec.Replicas = &one
		s.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	})
	h.step()
	if got := h.names(); !equal(got, []string{"web-0", "web-1"}) {
		t.Fatalf("after one step: %v", got)
	}
	h.step()
	if got := h.names(); !equal(got, []string{"web-0"}) {
		t.Fatalf("after two steps: %v", got)
	}
	l, _ := h.cs.CoreV1().PersistentVolumeClaims("ns").List(context.Background(), metav1.ListOptions{})
	if len(l.Items) != 3 {
		t.Fatalf("%d claims, want 3 kept", len(l.Items))
	}
}

func TestScaleDownDeleteClaimsByPolicy(t *testing.T) {
	s := makeSet("web", 2).parallel().claim("data").obj()
	s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
	h := newHarness(t, s)
	h.step()
	h.ready()
	pod1 := h.pods()["web-1"]
	h.update(func(s *appsv1.StatefulSet) { one := int32(1); s.Spec.Replicas = &one })
	h.step()
	pvc, err := h.cs.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), "data-web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var set, pod bool
	for _, r := range pvc.OwnerReferences {
		set = set || r.Kind == "StatefulSet"
		pod = pod || (r.Kind == "Pod" && r.UID == pod1.UID)
	}
	if !set || !pod {
		t.Fatalf("claim owners %+v: want the set (whenDeleted) and the condemned pod (whenScaled)", pvc.OwnerReferences)
	}
}

func TestRollingUpdateWithPartition(t *testing.T) {
	h := newHarness(t, makeSet("web", 3).parallel().obj())
	h.step()
	h.ready()
	h.step()
	oldRev := h.set().Status.CurrentRevision
	h.update(func(s *appsv1.StatefulSet) {
		one := int32(1)
		s.Spec.Template.Spec.Containers[0].Image = "img:2"
		s.Spec.UpdateStrategy.RollingUpdate.Partition = &one
	})
	var order []string
	for i := 0; i < 10; i++ {
		before := h.pods()
		h.step()
		after := h.pods()
		for n, p := range before {
			if q, ok := after[n]; !ok || q.UID != p.UID {
				order = append(order, n)
			}
		}
		h.ready()
	}
	if !equal(order, []string{"web-2", "web-1"}) {
		t.Fatalf("updated %v, want web-2 then web-1", order)
	}
	st := h.set().Status
	pods := h.pods()
	if revisionOf(pods["web-0"]) != oldRev || revisionOf(pods["web-1"]) != st.UpdateRevision || revisionOf(pods["web-2"]) != st.UpdateRevision {
		t.Fatalf("revisions: %s %s %s (current %s update %s)", revisionOf(pods["web-0"]), revisionOf(pods["web-1"]), revisionOf(pods["web-2"]), st.CurrentRevision, st.UpdateRevision)
	}
	if st.UpdatedReplicas != 2 || st.CurrentReplicas != 1 || st.CurrentRevision != oldRev {
		t.Fatalf("status %+v", st)
	}
	if pods["web-2"].Spec.Containers[0].Image != "img:2" {
		t.Fatal("web-2 not at the new template")
	}
}

func TestOnDeleteLeavesPods(t *testing.T) {
	h := newHarness(t, makeSet("web", 2).parallel().obj())
	h.step()
	h.ready()
	before := h.pods()
	h.update(func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Image = "img:2"
		s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	})
	h.step()
	h.step()
	for n, p := range h.pods() {
		if before[n].UID != p.UID {
			t.Fatalf("%s replaced under OnDelete", n)
		}
	}
	if err := h.cs.CoreV1().Pods("ns").Delete(context.Background(), "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.step()
	if img := h.pods()["web-1"].Spec.Containers[0].Image; img != "img:2" {
		t.Fatalf("recreated web-1 runs %s, want img:2", img)
	}
}

func TestRevisionsAndRollback(t *testing.T) {
	h := newHarness(t, makeSet("web", 1).obj())
	h.step()
	h.ready()
	h.step()
	h.update(func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "img:2" })
	h.step()
	h.update(func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "img:1" })
	h.step()
	l, err := h.cs.AppsV1().ControllerRevisions("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	revs := map[int64]string{}
	for _, r := range l.Items {
		revs[r.Revision] = r.Name
		if !metav1.IsControlledBy(&r, h.set()) || r.Labels["app"] != "web" {
			t.Errorf("revision %s: owner %v labels %v", r.Name, r.OwnerReferences, r.Labels)
		}
	}
	if len(revs) != 2 || revs[3] == "" || revs[2] == "" {
		t.Fatalf("revisions %v: want 2 and 3 (rollback renumbers the first)", revs)
	}
	if h.set().Status.UpdateRevision != revs[3] {
		t.Fatalf("update revision %s, want %s", h.set().Status.UpdateRevision, revs[3])
	}
}

func TestOrdinalOf(t *testing.T) {
	s := makeSet("web", 1).obj()
	tests := []struct {
		name string
		ord  int
		ok   bool
	}{{"web-0", 0, true}, {"web-12", 12, true}, {"web-01", 0, false}, {"web-x", 0, false}, {"web2-1", 0, false}, {"web--1", 0, false}}
	for _, tt := range tests {
		ord, ok := ordinalOf(s, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tt.name}})
		if ok != tt.ok || ord != tt.ord {
			t.Errorf("%s: %d %v, want %d %v", tt.name, ord, ok, tt.ord, tt.ok)
		}
	}
}
