package pvcprotection

import (
	"context"
	"io"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

func pod(name, node string, phase corev1.PodPhase, claim string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: corev1.PodSpec{NodeName: node, Volumes: []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}},
		}},
		Status: corev1.PodStatus{Phase: phase}}
}

func TestUses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pod   *corev1.Pod
		claim string
		want  bool
	}{
		{"running pod", pod("p", "n1", corev1.PodRunning, "c"), "c", true},
		{"pending scheduled pod", pod("p", "n1", corev1.PodPending, "c"), "c", true},
		{"ephemeral claim", pod("p", "n1", corev1.PodRunning, "c"), "p-scratch", true},
		{"other claim", pod("p", "n1", corev1.PodRunning, "c"), "d", false},
		{"unscheduled", pod("p", "", corev1.PodPending, "c"), "c", false},
		{"succeeded", pod("p", "n1", corev1.PodSucceeded, "c"), "c", false},
		{"failed", pod("p", "n1", corev1.PodFailed, "c"), "c", false},
	} {
		if got := Uses(tc.pod, tc.claim); got != tc.want {
			t.Errorf("%s: Uses = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	now := metav1.Now()
	fresh := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Namespace: "ns"}}
	busy := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "busy", Namespace: "ns", DeletionTimestamp: &now, Finalizers: []string{Finalizer}}}
	idle := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "idle", Namespace: "ns", DeletionTimestamp: &now, Finalizers: []string{"other", Finalizer}}}
	cs := fake.NewClientset(fresh, busy, idle, pod("user", "n1", corev1.PodRunning, "busy"), pod("done", "n1", corev1.PodSucceeded, "idle"))
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.queue.ShutDown()
	for _, o := range []*corev1.PersistentVolumeClaim{fresh, busy, idle} {
		if err := inf.Core().V1().PersistentVolumeClaims().Informer().GetStore().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []struct {
		name       string
		finalizers []string
	}{{"fresh", []string{Finalizer}}, {"busy", []string{Finalizer}}, {"idle", []string{"other"}}} {
		if err := c.sync(ctx, "ns/"+want.name); err != nil {
			t.Fatal(err)
		}
		got, _ := cs.CoreV1().PersistentVolumeClaims("ns").Get(ctx, want.name, metav1.GetOptions{})
		if len(got.Finalizers) != len(want.finalizers) || (len(want.finalizers) > 0 && got.Finalizers[0] != want.finalizers[0]) {
			t.Errorf("%s: finalizers %v, want %v", want.name, got.Finalizers, want.finalizers)
		}
	}
}
