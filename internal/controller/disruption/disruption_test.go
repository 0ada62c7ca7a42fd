package disruption

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

type podB struct{ p *corev1.Pod }

func mkPod(name string) podB {
	return podB{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "web"}}}}
}
func (b podB) ready() podB {
	b.p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	return b
}
func (b podB) owner(kind, name string, uid types.UID) podB {
	api := "apps/v1"
	if kind == "ReplicationController" {
		api = "v1"
	}
	b.p.OwnerReferences = []metav1.OwnerReference{{APIVersion: api, Kind: kind, Name: name, UID: uid, Controller: ptr(true)}}
	return b
}
func (b podB) deleting() podB {
	t := metav1.NewTime(now)
	b.p.DeletionTimestamp = &t
	return b
}
func (b podB) obj() *corev1.Pod { return b.p }

func readyOwned(n int, uid types.UID) []*corev1.Pod {
	var out []*corev1.Pod
	for i := 0; i < n; i++ {
		out = append(out, mkPod(string(rune('a'+i))).ready().owner("ReplicaSet", "rs", uid).obj())
	}
	return out
}

func pdb(minAvailable, maxUnavailable *intstr.IntOrString) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "pdb", Namespace: "ns", Generation: 3},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: minAvailable, MaxUnavailable: maxUnavailable,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
}

func fixedScale(n int32) scaleFunc {
	return func(_ string, ref *metav1.OwnerReference) (types.UID, int32, bool, error) {
		return ref.UID, n, true, nil
	}
}

func TestComputeStatus(t *testing.T) {
	i, pct := intstr.FromInt32, intstr.FromString
	tests := []struct {
		name                                string
		pdb                                 *policyv1.PodDisruptionBudget
		pods                                []*corev1.Pod
		scale                               int32
		healthy, desired, expected, allowed int32
		reason                              string
		wantErr                             bool
	}{
		{"minAvailable int", pdb(ptr(i(2)), nil), readyOwned(3, "rs1"), 3, 3, 2, 3, 1, policyv1.SufficientPodsReason, false},
		{"minAvailable int, none to spare", pdb(ptr(i(3)), nil), readyOwned(3, "rs1"), 3, 3, 3, 3, 0, policyv1.InsufficientPodsReason, false},
		{"minAvailable percent rounds up", pdb(ptr(pct("50%")), nil), readyOwned(3, "rs1"), 3, 3, 2, 3, 1, policyv1.SufficientPodsReason, false},
		{"minAvailable percent of the scale, not the pods", pdb(ptr(pct("50%")), nil), readyOwned(3, "rs1"), 10, 3, 5, 10, 0, policyv1.InsufficientPodsReason, false},
		{"maxUnavailable int", pdb(nil, ptr(i(1))), readyOwned(3, "rs1"), 3, 3, 2, 3, 1, policyv1.SufficientPodsReason, false},
		{"maxUnavailable percent", pdb(nil, ptr(pct("34%"))), readyOwned(3, "rs1"), 3, 3, 1, 3, 2, policyv1.SufficientPodsReason, false},
		{"maxUnavailable beyond scale", pdb(nil, ptr(i(5))), readyOwned(3, "rs1"), 3, 3, 0, 3, 3, policyv1.SufficientPodsReason, false},
		{"no pods allows nothing", pdb(nil, ptr(i(1))), nil, 3, 0, 0, 0, 0, policyv1.InsufficientPodsReason, false},
		{"not ready and deleting pods are not healthy",
			pdb(ptr(i(1)), nil),
			[]*corev1.Pod{mkPod("a").ready().obj(), mkPod("b").obj(), mkPod("c").ready().deleting().obj()},
			0, 1, 1, 3, 0, policyv1.InsufficientPodsReason, false},
		{"percent with an unmanaged pod counts the managed ones",
			pdb(ptr(pct("50%")), nil),
			append(readyOwned(2, "rs1"), mkPod("z").ready().obj()),
			2, 3, 1, 2, 2, policyv1.SufficientPodsReason, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _, _, err := computeStatus(tt.pdb, tt.pods, fixedScale(tt.scale), now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if st.CurrentHealthy != tt.healthy || st.DesiredHealthy != tt.desired || st.ExpectedPods != tt.expected || st.DisruptionsAllowed != tt.allowed {
				t.Errorf("healthy/desired/expected/allowed = %d/%d/%d/%d, want %d/%d/%d/%d", st.CurrentHealthy, st.DesiredHealthy,
					st.ExpectedPods, st.DisruptionsAllowed, tt.healthy, tt.desired, tt.expected, tt.allowed)
			}
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d, want 3", st.ObservedGeneration)
			}
			c := meta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition)
			if c == nil || c.Reason != tt.reason || (c.Status == metav1.ConditionTrue) != (tt.allowed > 0) {
				t.Errorf("condition %+v, want reason %s", c, tt.reason)
			}
		})
	}
}

func TestDisruptedPods(t *testing.T) {
	p := pdb(ptr(intstr.FromInt32(1)), nil)
	p.Status.DisruptedPods = map[string]metav1.Time{
		"fresh":   metav1.NewTime(now.Add(-30 * time.Second)),
		"expired": metav1.NewTime(now.Add(-3 * time.Minute)),
		"going":   metav1.NewTime(now.Add(-10 * time.Second)),
		"gone":    metav1.NewTime(now.Add(-10 * time.Second)),
	}
	pods := []*corev1.Pod{mkPod("fresh").ready().obj(), mkPod("expired").ready().obj(), mkPod("going").ready().deleting().obj()}
	st, _, recheck, err := computeStatus(p, pods, fixedScale(0), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.DisruptedPods) != 1 || st.DisruptedPods["fresh"].Time.IsZero() {
		t.Errorf("disruptedPods %v, want only fresh", st.DisruptedPods)
	}
	if st.CurrentHealthy != 1 {
		t.Errorf("currentHealthy %d, want 1 (expired only)", st.CurrentHealthy)
	}
	if recheck != 90*time.Second {
		t.Errorf("recheck in %v, want 90s", recheck)
	}
}

func TestScaleFinder(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", UID: "d1"}, Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(5))}}
	rsOfD := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "d-abc", Namespace: "ns", UID: "rs1",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "d", UID: "d1", Controller: ptr(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(2))}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: "ns", UID: "rs2"}, Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(4))}}
	ss := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "ss", Namespace: "ns", UID: "ss1"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr(int32(3))}}
	rc := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "rc", Namespace: "ns", UID: "rc1"}, Spec: corev1.ReplicationControllerSpec{Replicas: ptr(int32(7))}}
	c, _ := newTest(t, d, rsOfD, rs, ss, rc)
	tests := []struct {
		ref   metav1.OwnerReference
		uid   types.UID
		scale int32
		found bool
	}{
		{metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "d-abc", UID: "rs1"}, "d1", 5, true},
		{metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "solo", UID: "rs2"}, "rs2", 4, true},
		{metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "ss", UID: "ss1"}, "ss1", 3, true},
		{metav1.OwnerReference{APIVersion: "v1", Kind: "ReplicationController", Name: "rc", UID: "rc1"}, "rc1", 7, true},
		{metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "solo", UID: "other"}, "", 0, false},
		{metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "j", UID: "j1"}, "", 0, false},
	}
	for _, tt := range tests {
		uid, n, found, err := c.scales.scale("ns", &tt.ref)
		if err != nil || uid != tt.uid || n != tt.scale || found != tt.found {
			t.Errorf("%s/%s: got %s %d %v %v, want %s %d %v", tt.ref.Kind, tt.ref.Name, uid, n, found, err, tt.uid, tt.scale, tt.found)
		}
	}
}

func TestSync(t *testing.T) {
	t.Run("writes status", func(t *testing.T) {
		p := pdb(ptr(intstr.FromInt32(1)), nil)
		c, cs := newTest(t, p, mkPod("a").ready().obj(), mkPod("b").ready().obj())
		if err := c.sync(context.Background(), "ns/pdb"); err != nil {
			t.Fatal(err)
		}
		got, _ := cs.PolicyV1().PodDisruptionBudgets("ns").Get(context.Background(), "pdb", metav1.GetOptions{})
		if got.Status.DisruptionsAllowed != 1 || got.Status.ObservedGeneration != 3 {
			t.Errorf("status %+v", got.Status)
		}
	})
	t.Run("fails safe without a known controller", func(t *testing.T) {
		p := pdb(nil, ptr(intstr.FromInt32(1)))
		p.Status.DisruptionsAllowed = 4
		c, cs := newTest(t, p, mkPod("a").ready().owner("ReplicaSet", "missing", "x").obj())
		if err := c.sync(context.Background(), "ns/pdb"); err == nil {
			t.Fatal("want an error")
		}
		got, _ := cs.PolicyV1().PodDisruptionBudgets("ns").Get(context.Background(), "pdb", metav1.GetOptions{})
		cond := meta.FindStatusCondition(got.Status.Conditions, policyv1.DisruptionAllowedCondition)
		if got.Status.DisruptionsAllowed != 0 || cond == nil || cond.Reason != policyv1.SyncFailedReason {
			t.Errorf("status %+v, want 0 allowed and SyncFailed", got.Status)
		}
	})
}

func newTest(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.queue.ShutDown)
	c.now = func() time.Time { return now }
	for _, o := range objs {
		var idx interface{ Add(any) error }
		switch o.(type) {
		case *corev1.Pod:
			idx = inf.Core().V1().Pods().Informer().GetIndexer()
		case *policyv1.PodDisruptionBudget:
			idx = inf.Policy().V1().PodDisruptionBudgets().Informer().GetIndexer()
		case *appsv1.Deployment:
			idx = inf.Apps().V1().Deployments().Informer().GetIndexer()
		case *appsv1.ReplicaSet:
			idx = inf.Apps().V1().ReplicaSets().Informer().GetIndexer()
		case *appsv1.StatefulSet:
			idx = inf.Apps().V1().StatefulSets().Informer().GetIndexer()
		case *corev1.ReplicationController:
			idx = inf.Core().V1().ReplicationControllers().Informer().GetIndexer()
		}
		if err := idx.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	return c, cs
}
