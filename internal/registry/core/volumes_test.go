package core

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidatePV(t *testing.T) {
	base := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "v"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:                      corev1.ResourceList{corev1.ResourceStorage: apiresource.MustParse("1Gi")},
		AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
		PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}},
	}}
	if errs := validatePV(base); len(errs) != 0 {
		t.Fatalf("valid volume: %v", errs)
	}
	for _, tc := range []struct {
		name string
		edit func(*corev1.PersistentVolume)
		want string
	}{
		{"no capacity", func(v *corev1.PersistentVolume) { v.Spec.Capacity = nil }, "spec.capacity: Required value"},
		{"cpu capacity", func(v *corev1.PersistentVolume) { v.Spec.Capacity[corev1.ResourceCPU] = apiresource.MustParse("1") }, `Unsupported value: "cpu"`},
		{"no access modes", func(v *corev1.PersistentVolume) { v.Spec.AccessModes = nil }, "spec.accessModes: Required value"},
		{"RWOP with others", func(v *corev1.PersistentVolume) {
			v.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod, corev1.ReadWriteOnce}
		}, "may not use ReadWriteOncePod with other access modes"},
		{"no source", func(v *corev1.PersistentVolume) { v.Spec.HostPath = nil }, "must specify a volume type"},
		{"two sources", func(v *corev1.PersistentVolume) { v.Spec.NFS = &corev1.NFSVolumeSource{Server: "s", Path: "/p"} }, "may not specify more than 1 volume type"},
		{"hostPath without path", func(v *corev1.PersistentVolume) { v.Spec.HostPath.Path = "" }, "spec.hostPath.path: Required value"},
		{"local without affinity", func(v *corev1.PersistentVolume) {
			v.Spec.HostPath, v.Spec.Local = nil, &corev1.LocalVolumeSource{Path: "/mnt"}
		}, "spec.nodeAffinity: Required value"},
		{"reclaim policy", func(v *corev1.PersistentVolume) { v.Spec.PersistentVolumeReclaimPolicy = "Keep" }, `Unsupported value: "Keep"`},
		{"claimRef without name", func(v *corev1.PersistentVolume) { v.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns"} }, "spec.claimRef.name: Required value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := base.DeepCopy()
			tc.edit(v)
			if errs := validatePV(v); !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Fatalf("validatePV = %v, want %q", errs, tc.want)
			}
		})
	}
	moved := base.DeepCopy()
	moved.Spec.HostPath.Path = "/y"
	if errs := validatePVUpdate(moved, base); !strings.Contains(errs.ToAggregate().Error(), "spec.persistentvolumesource is immutable after creation") {
		t.Errorf("volume source update: %v", errs)
	}
}

func TestValidatePVCUpdate(t *testing.T) {
	class := "gold"
	old := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: apiresource.MustParse("1Gi")}},
	}}
	for _, tc := range []struct {
		name string
		edit func(*corev1.PersistentVolumeClaim)
		want string
	}{
		{"bind", func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "pv" }, ""},
		{"class on an unbound claim without one", func(c *corev1.PersistentVolumeClaim) { c.Spec.StorageClassName = &class }, ""},
		{"grow", func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = apiresource.MustParse("2Gi")
		}, ""},
		{"access modes", func(c *corev1.PersistentVolumeClaim) {
			c.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		}, "spec is immutable after creation"},
		{"zero request", func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = apiresource.MustParse("0")
		}, "must be greater than zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := old.DeepCopy()
			tc.edit(c)
			errs := validatePVCUpdate(c, old)
			if tc.want == "" && len(errs) != 0 || tc.want != "" && !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Fatalf("validatePVCUpdate = %v, want %q", errs, tc.want)
			}
		})
	}
	bound := old.DeepCopy()
	bound.Spec.VolumeName = "pv"
	changed := bound.DeepCopy()
	changed.Spec.VolumeName = "other"
	if errs := validatePVCUpdate(changed, bound); len(errs) == 0 {
		t.Error("rebinding a bound claim was allowed")
	}
}
