package storage

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDefaultAndValidate(t *testing.T) {
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Provisioner: "example.com/x"}
	Default(sc)
	if *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || *sc.VolumeBindingMode != storagev1.VolumeBindingImmediate {
		t.Fatalf("defaults: %v %v", *sc.ReclaimPolicy, *sc.VolumeBindingMode)
	}
	if errs := Validate(sc); len(errs) != 0 {
		t.Fatalf("valid class: %v", errs)
	}
	recycle, odd := corev1.PersistentVolumeReclaimRecycle, storagev1.VolumeBindingMode("Later")
	for _, tc := range []struct {
		name string
		edit func(*storagev1.StorageClass)
		want string
	}{
		{"no provisioner", func(s *storagev1.StorageClass) { s.Provisioner = "" }, "provisioner: Required value"},
		{"bad provisioner", func(s *storagev1.StorageClass) { s.Provisioner = "a b" }, "provisioner: Invalid value"},
		{"recycle", func(s *storagev1.StorageClass) { s.ReclaimPolicy = &recycle }, `reclaimPolicy: Unsupported value: "Recycle"`},
		{"binding mode", func(s *storagev1.StorageClass) { s.VolumeBindingMode = &odd }, `volumeBindingMode: Unsupported value: "Later"`},
		{"empty parameter key", func(s *storagev1.StorageClass) { s.Parameters = map[string]string{"": "v"} }, "parameters: Invalid value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sc.DeepCopy()
			tc.edit(c)
			if errs := Validate(c); !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", errs, tc.want)
			}
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	old := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Provisioner: "example.com/x", Parameters: map[string]string{"a": "b"}}
	Default(old)
	retain, wffc, yes := corev1.PersistentVolumeReclaimRetain, storagev1.VolumeBindingWaitForFirstConsumer, true
	for _, tc := range []struct {
		name string
		edit func(*storagev1.StorageClass)
		want string
	}{
		{"labels and expansion", func(s *storagev1.StorageClass) { s.Labels = map[string]string{"x": "y"}; s.AllowVolumeExpansion = &yes }, ""},
		{"provisioner", func(s *storagev1.StorageClass) { s.Provisioner = "example.com/y" }, "updates to provisioner are forbidden."},
		{"parameters", func(s *storagev1.StorageClass) { s.Parameters = nil }, "updates to parameters are forbidden."},
		{"reclaim policy", func(s *storagev1.StorageClass) { s.ReclaimPolicy = &retain }, "updates to reclaimPolicy are forbidden."},
		{"binding mode", func(s *storagev1.StorageClass) { s.VolumeBindingMode = &wffc }, "volumeBindingMode: Invalid value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := old.DeepCopy()
			tc.edit(c)
			errs := ValidateUpdate(c, old)
			if tc.want == "" && len(errs) != 0 || tc.want != "" && !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Fatalf("ValidateUpdate = %v, want %q", errs, tc.want)
			}
		})
	}
}
