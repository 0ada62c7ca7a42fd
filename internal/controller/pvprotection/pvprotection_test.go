package pvprotection

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

func TestSync(t *testing.T) {
	ctx := context.Background()
	now := metav1.Now()
	pv := func(name string, deleted bool, phase corev1.PersistentVolumePhase, fin ...string) *corev1.PersistentVolume {
		v := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: fin}, Status: corev1.PersistentVolumeStatus{Phase: phase}}
		if deleted {
			v.DeletionTimestamp = &now
		}
		return v
	}
	vols := []*corev1.PersistentVolume{
		pv("fresh", false, corev1.VolumeAvailable),
		pv("bound", true, corev1.VolumeBound, Finalizer),
		pv("released", true, corev1.VolumeReleased, Finalizer),
		pv("available", true, corev1.VolumeAvailable, Finalizer),
		pv("claimed", true, corev1.VolumeBound, Finalizer),
		pv("orphan", true, corev1.VolumeBound, Finalizer),
	}
	vols[4].Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "c", UID: "u1"}
	vols[5].Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "gone", UID: "u2"}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c", UID: "u1"}}
	cs := fake.NewClientset(vols[0], vols[1], vols[2], vols[3], vols[4], vols[5], claim)
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.queue.ShutDown()
	for _, v := range vols {
		if err := inf.Core().V1().PersistentVolumes().Informer().GetStore().Add(v); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"fresh": 1, "bound": 1, "released": 0, "available": 0, "claimed": 1, "orphan": 0}
	for name, n := range want {
		if err := c.sync(ctx, name); err != nil {
			t.Fatal(err)
		}
		got, _ := cs.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if len(got.Finalizers) != n {
			t.Errorf("%s: finalizers %v, want %d", name, got.Finalizers, n)
		}
	}
}
