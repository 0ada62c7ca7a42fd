package rbac_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestStorageProtection: a claim used by a pod (bound to a node name no
// agent serves: it only has to exist, not terminated) stays Terminating
// until the pod is gone; a bound volume stays until its claim is gone.
func TestStorageProtection(t *testing.T) {
	srv := framework.StartServer(t, "--cluster-cidr", clusterCIDR(11))
	cs := srv.Client()
	ctx := framework.Context(t, 3*time.Minute)
	ns := "default"
	manual := "manual"

	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-protect"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
		StorageClassName:              manual,
		PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/skiff-pv-protect"}},
	}}
	pv, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pv.Finalizers, "kubernetes.io/pv-protection") {
		t.Errorf("new volume finalizers %v", pv.Finalizers)
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: ns}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		StorageClassName: &manual,
		VolumeName:       pv.Name,
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
	}}
	pvc, err = cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pvc.Finalizers, "kubernetes.io/pvc-protection") {
		t.Errorf("new claim finalizers %v", pvc.Finalizers)
	}
	poll(t, ctx, "volume bound", func() bool {
		v, err := cs.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return err == nil && v.Status.Phase == corev1.VolumeBound
	})

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "user", Namespace: ns}, Spec: corev1.PodSpec{
		NodeName:   "hollow-nowhere",
		Containers: []corev1.Container{{Name: "c", Image: "busybox:latest", Command: []string{"sleep", "3600"}}},
		Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}}}},
	}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The claim is deleted but stays, Terminating, while the pod exists.
	if err := cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, pvc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The volume too, while bound.
	if err := cs.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	got, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, pvc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("claim in use is gone: %v", err)
	}
	if got.DeletionTimestamp == nil || !slices.Contains(got.Finalizers, "kubernetes.io/pvc-protection") {
		t.Errorf("claim in use: deletionTimestamp %v finalizers %v", got.DeletionTimestamp, got.Finalizers)
	}
	v, err := cs.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
	if err != nil || v.DeletionTimestamp == nil {
		t.Fatalf("bound volume: %v %+v", err, v)
	}

	// The pod goes (force: no kubelet will confirm), then the claim, then
	// the volume, released by the binder.
	zero := int64(0)
	if err := cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	gone(t, ctx, cs, "claim", func() error {
		_, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, pvc.Name, metav1.GetOptions{})
		return err
	})
	t.Logf("pod deleted → claim removed in %v", time.Since(start).Round(time.Millisecond))
	gone(t, ctx, cs, "volume", func() error {
		_, err := cs.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return err
	})
	t.Logf("pod deleted → volume removed in %v", time.Since(start).Round(time.Millisecond))
}

func poll(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func gone(t *testing.T, ctx context.Context, _ kubernetes.Interface, what string, get func() error) {
	t.Helper()
	poll(t, ctx, what+" removed", func() bool { return apierrors.IsNotFound(get()) })
}
