package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/internal/controller/localpath"
)

func TestClaimVolume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage", "pvc-1_default_data")
	typ := corev1.HostPathDirectoryOrCreate
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"}, Spec: corev1.PersistentVolumeSpec{
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &typ}},
		ClaimRef:               &corev1.ObjectReference{Namespace: "default", Name: "data", UID: "1"}}}
	claim := func(name, volume string, phase corev1.PersistentVolumeClaimPhase) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: "1"},
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: volume}, Status: corev1.PersistentVolumeClaimStatus{Phase: phase}}
	}
	other := claim("other", "pvc-1", corev1.ClaimBound)
	other.UID = "2"
	client := fake.NewSimpleClientset(pv, claim("data", "pvc-1", corev1.ClaimBound), claim("pending", "", corev1.ClaimPending), other)
	o := newObjects(client, "default")
	for _, tc := range []struct {
		claim    string
		readOnly bool
		want     string
	}{
		{"missing", false, `persistentvolumeclaim "missing" not found`},
		{"pending", false, "error processing PVC default/pending: PVC is not bound"},
		{"other", false, "persistent volume pvc-1 is not bound to claim default/other"},
		{"data", true, ""},
	} {
		t.Run(tc.claim, func(t *testing.T) {
			v, err := claimVolume(context.Background(), o, &corev1.PersistentVolumeClaimVolumeSource{ClaimName: tc.claim, ReadOnly: tc.readOnly})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("claimVolume = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.path != dir || v.readOnly != tc.readOnly || v.contained {
				t.Errorf("volume %+v", v)
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				t.Errorf("DirectoryOrCreate did not create %s: %v", dir, err)
			}
		})
	}
}

func TestOwnedDir(t *testing.T) {
	mk := func(path string, ann bool) *corev1.PersistentVolume {
		pv := &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: path}}}}
		if ann {
			pv.Annotations = map[string]string{localpath.ProvisionedByAnnotation: localpath.Provisioner}
		}
		return pv
	}
	for _, tc := range []struct {
		pv   *corev1.PersistentVolume
		want bool
	}{
		{mk("/d/storage/pvc-1_ns_c", true), true},
		{mk("/d/storage/pvc-1_ns_c", false), false},   // not local-path
		{mk("/d/storage/../pvc-1_ns_c", true), false}, // outside the directory
		{mk("/d/storage", true), false},               // the directory itself
		{mk("/d/storage/data", true), false},          // not a volume directory
		{mk("/d/storage/pvc-1/nested", true), false},  // not directly inside
	} {
		if _, got := localpath.OwnedDir(tc.pv, "/d/storage"); got != tc.want {
			t.Errorf("OwnedDir(%s) = %v, want %v", tc.pv.Spec.HostPath.Path, got, tc.want)
		}
	}
}
