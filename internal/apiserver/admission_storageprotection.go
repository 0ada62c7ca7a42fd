package apiserver

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The finalizers the pvc-protection and pv-protection controllers keep.
const (
	pvcProtectionFinalizer = "kubernetes.io/pvc-protection"
	pvProtectionFinalizer  = "kubernetes.io/pv-protection"
)

// admitStorageProtection gives new claims and volumes their protection
// finalizer, as upstream's StorageObjectInUseProtection admission plugin:
// the object then outlives a delete until its controller lets it go.
func admitStorageProtection(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.PersistentVolumeClaim:
		if !slices.Contains(o.Finalizers, pvcProtectionFinalizer) {
			o.Finalizers = append(o.Finalizers, pvcProtectionFinalizer)
		}
	case *corev1.PersistentVolume:
		if !slices.Contains(o.Finalizers, pvProtectionFinalizer) {
			o.Finalizers = append(o.Finalizers, pvProtectionFinalizer)
		}
	}
}
