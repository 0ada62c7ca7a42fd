package printers

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func init() {
	register("storage.k8s.io", "v1", "storageclasses", storageClassColumns)
}

// storageClassColumns are upstream's: the default class's name carries
// " (default)".
func storageClassColumns() []column {
	name := nameCol()
	name.cell = func(o runtime.Object, _ time.Time) interface{} {
		sc, ok := o.(*storagev1.StorageClass)
		if !ok {
			return "<unknown>"
		}
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" ||
			sc.Annotations["storageclass.beta.kubernetes.io/is-default-class"] == "true" {
			return sc.Name + " (default)"
		}
		return sc.Name
	}
	return []column{name,
		col("Provisioner", "string", 0, "", func(s *storagev1.StorageClass, _ time.Time) interface{} { return s.Provisioner }),
		col("ReclaimPolicy", "string", 0, "", func(s *storagev1.StorageClass, _ time.Time) interface{} {
			if s.ReclaimPolicy == nil {
				return string(corev1.PersistentVolumeReclaimDelete)
			}
			return string(*s.ReclaimPolicy)
		}),
		col("VolumeBindingMode", "string", 0, "", func(s *storagev1.StorageClass, _ time.Time) interface{} {
			if s.VolumeBindingMode == nil {
				return string(storagev1.VolumeBindingImmediate)
			}
			return string(*s.VolumeBindingMode)
		}),
		col("AllowVolumeExpansion", "string", 0, "", func(s *storagev1.StorageClass, _ time.Time) interface{} {
			return s.AllowVolumeExpansion != nil && *s.AllowVolumeExpansion
		}),
		ageCol()}
}
