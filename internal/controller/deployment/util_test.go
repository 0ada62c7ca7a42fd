package deployment

import (
	"context"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func deploy(replicas int32, surge, unavailable string) *appsv1.Deployment {
	s, u := intstr.Parse(surge), intstr.Parse(unavailable)
	return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
		Replicas: &replicas,
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}},
	}}
}

func rs(name string, replicas int32, ageSeconds int, annotations map[string]string) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations,
			CreationTimestamp: metav1.NewTime(time.Unix(1000000-int64(ageSeconds), 0))},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas},
	}
}

func TestFenceposts(t *testing.T) {
	tests := []struct {
		replicas            int32
		surge, unavailable  string
		wantSurge, wantUnav int32
	}{
		{10, "25%", "25%", 3, 2},
		{4, "1", "0", 1, 0},
		{3, "0", "0", 0, 1}, // both zero would stall: one may be unavailable
		{1, "25%", "25%", 1, 0},
		{0, "25%", "25%", 0, 0},
	}
	for _, tt := range tests {
		d := deploy(tt.replicas, tt.surge, tt.unavailable)
		if s, u := MaxSurge(d), MaxUnavailable(d); s != tt.wantSurge || u != tt.wantUnav {
			t.Errorf("%d replicas surge %s unavailable %s: got %d/%d, want %d/%d", tt.replicas, tt.surge, tt.unavailable, s, u, tt.wantSurge, tt.wantUnav)
		}
	}
	recreate := deploy(5, "1", "1")
	recreate.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	if MaxSurge(recreate) != 0 || MaxUnavailable(recreate) != 0 {
		t.Error("Recreate has no surge or unavailability budget")
	}
}

func TestNewRSReplicas(t *testing.T) {
	d := deploy(10, "3", "2")
	old := rs("old", 10, 100, nil)
	newRS := rs("new", 0, 0, nil)
	if got := newRSReplicas(d, []*appsv1.ReplicaSet{old, newRS}, newRS); got != 3 {
		t.Fatalf("first step: got %d, want maxSurge 3", got)
	}
	old.Spec.Replicas = ptr(int32(8))
	newRS.Spec.Replicas = ptr(int32(3))
	if got := newRSReplicas(d, []*appsv1.ReplicaSet{old, newRS}, newRS); got != 5 {
		t.Fatalf("after old scaled to 8: got %d, want 5", got)
	}
	old.Spec.Replicas = ptr(int32(0))
	newRS.Spec.Replicas = ptr(int32(9))
	if got := newRSReplicas(d, []*appsv1.ReplicaSet{old, newRS}, newRS); got != 10 {
		t.Fatalf("never beyond replicas: got %d, want 10", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestProportionalScaling(t *testing.T) {
	// A rollout of 10 (surge 3) sits at old=8/new=5; scaling to 20 spreads
	// the 10 extra (plus surge growth) by size.
	d := deploy(20, "3", "2")
	ann := map[string]string{MaxReplicasAnnotation: "13"}
	old := rs("old", 8, 100, ann)
	newRS := rs("new", 5, 0, ann)
	pOld := proportion(old, d, 10, 0)
	pNew := proportion(newRS, d, 10, pOld)
	if pOld+pNew != 10 {
		t.Fatalf("proportions %d+%d must use the whole increase of 10", pOld, pNew)
	}
	if pOld <= pNew {
		t.Fatalf("the larger ReplicaSet gets the larger share: old %d, new %d", pOld, pNew)
	}
}

func TestHashAndEquality(t *testing.T) {
	t1 := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}}}
	t2 := t1.DeepCopy()
	if ComputeHash(t1, nil) != ComputeHash(t2, nil) {
		t.Fatal("equal templates must hash equally")
	}
	one := int32(1)
	if ComputeHash(t1, nil) == ComputeHash(t1, &one) {
		t.Fatal("the collision count must change the hash")
	}
	t2.Spec.Containers[0].Image = "nginx:2"
	if ComputeHash(t1, nil) == ComputeHash(t2, nil) {
		t.Fatal("a changed image must change the hash")
	}
	t3 := t1.DeepCopy()
	t3.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "abc"
	if !EqualIgnoreHash(t1, t3) {
		t.Fatal("the pod-template-hash label must be ignored")
	}
	if EqualIgnoreHash(t1, t2) {
		t.Fatal("different images are different templates")
	}
}

func TestRevisionAnnotations(t *testing.T) {
	d := deploy(3, "1", "0")
	d.Annotations = map[string]string{"kubernetes.io/change-cause": "v2", lastAppliedAnnotation: "{}"}
	r := rs("r", 0, 0, map[string]string{RevisionAnnotation: "1"})
	if !setNewRSAnnotations(d, r, "3", true) {
		t.Fatal("a newer revision is a change")
	}
	if r.Annotations[RevisionAnnotation] != "3" || r.Annotations[RevisionHistoryAnnotation] != "1" {
		t.Fatalf("revision annotations: %v", r.Annotations)
	}
	if r.Annotations["kubernetes.io/change-cause"] != "v2" {
		t.Fatal("change-cause is copied for kubectl rollout history")
	}
	if _, ok := r.Annotations[lastAppliedAnnotation]; ok {
		t.Fatal("last-applied-configuration is not copied")
	}
	if setNewRSAnnotations(d, r, "2", true) {
		t.Fatal("an older revision must not replace a newer one")
	}
}

func TestConditionsKeepTransitionTime(t *testing.T) {
	st := &appsv1.DeploymentStatus{}
	t0 := time.Unix(100, 0)
	setCondition(st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonNewRSCreated, "a", t0))
	setCondition(st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonRSUpdated, "b", t0.Add(time.Minute)))
	c := getCondition(st, appsv1.DeploymentProgressing)
	if c.Reason != reasonRSUpdated || !c.LastTransitionTime.Time.Equal(t0) || !c.LastUpdateTime.Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("same status keeps the transition time, takes the update: %+v", c)
	}
	if len(st.Conditions) != 1 {
		t.Fatalf("one condition per type, got %d", len(st.Conditions))
	}
}

func TestCleanupUnhealthyNeverScalesUp(t *testing.T) {
	d := deploy(6, "2", "1")
	for _, tt := range []struct {
		name                string
		spec, available     int32
		wantSpec, wantCount int32
	}{
		// Status from before a scale-down still counts 6 available pods.
		{"stale status above spec", 5, 6, 5, 0},
		{"all available", 5, 5, 5, 0},
		{"two unavailable, one may go", 5, 3, 4, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old := rs("old", tt.spec, 100, nil)
			old.Namespace = "ns"
			old.Status.AvailableReplicas = tt.available
			cs := fake.NewSimpleClientset(old)
			c := &Controller{client: cs, recorder: record.NewFakeRecorder(10), log: slog.Default(), now: time.Now}
			_, n, err := c.cleanupUnhealthy(context.Background(), []*appsv1.ReplicaSet{old}, d, 1)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := cs.AppsV1().ReplicaSets("ns").Get(context.Background(), "old", metav1.GetOptions{})
			if n != tt.wantCount || *got.Spec.Replicas != tt.wantSpec {
				t.Fatalf("cleaned %d, spec %d; want %d, %d", n, *got.Spec.Replicas, tt.wantCount, tt.wantSpec)
			}
		})
	}
}

// maxUnavailable holds even when an old ReplicaSet's status still counts
// the pods of a scale-down this controller just made.
func TestScaleDownOldWithStaleStatus(t *testing.T) {
	d := deploy(6, "2", "1") // at least 5 available
	for _, tt := range []struct {
		name                   string
		oldSpec, oldAvailable  int32
		newSpec, newAvailable  int32
		wantOldSpec, wantCount int32
	}{
		// The old set was just scaled 6 → 5; its status still says 6.
		// Available in truth: 5 + 1 = 6, so one may go, not two.
		{"stale old status", 5, 6, 2, 1, 4, 1},
		{"fresh status", 5, 5, 2, 1, 4, 1},
		{"nothing to spare", 4, 4, 2, 1, 4, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old := rs("old", tt.oldSpec, 100, nil)
			old.Namespace = "ns"
			old.Status.AvailableReplicas = tt.oldAvailable
			nw := rs("new", tt.newSpec, 10, nil)
			nw.Namespace = "ns"
			nw.Status.AvailableReplicas = tt.newAvailable
			cs := fake.NewSimpleClientset(old, nw)
			c := &Controller{client: cs, recorder: record.NewFakeRecorder(10), log: slog.Default(), now: time.Now}
			n, err := c.scaleDownOld(context.Background(), []*appsv1.ReplicaSet{old, nw}, []*appsv1.ReplicaSet{old}, d)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := cs.AppsV1().ReplicaSets("ns").Get(context.Background(), "old", metav1.GetOptions{})
			if n != tt.wantCount || *got.Spec.Replicas != tt.wantOldSpec {
				t.Fatalf("scaled down %d, old spec %d; want %d, %d", n, *got.Spec.Replicas, tt.wantCount, tt.wantOldSpec)
			}
		})
	}
}
