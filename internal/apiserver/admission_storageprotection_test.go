package apiserver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAdmitStorageProtection(t *testing.T) {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Finalizers: []string{"x"}}}
	admitStorageProtection(pvc)
	admitStorageProtection(pvc)
	if len(pvc.Finalizers) != 2 || pvc.Finalizers[1] != pvcProtectionFinalizer {
		t.Errorf("claim finalizers %v", pvc.Finalizers)
	}
	pv := &corev1.PersistentVolume{}
	admitStorageProtection(pv)
	if len(pv.Finalizers) != 1 || pv.Finalizers[0] != pvProtectionFinalizer {
		t.Errorf("volume finalizers %v", pv.Finalizers)
	}
	cm := &corev1.ConfigMap{}
	admitStorageProtection(cm)
	if len(cm.Finalizers) != 0 {
		t.Errorf("configmap got finalizers %v", cm.Finalizers)
	}
}
