package apiserver

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/storage"
)

var storageClassesGVR = schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"}

// admitDefaultStorageClass is upstream's DefaultStorageClass admission: a
// new claim with no storageClassName at all (nil, not "") gets the default
// class. Without a default class the claim is left alone; with several,
// the newest wins, as upstream since 1.26. A failed lookup admits the
// claim unchanged rather than failing the write.
func (s *Server) admitDefaultStorageClass(ctx context.Context, obj runtime.Object) {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok || pvc.Spec.StorageClassName != nil {
		return
	}
	scRes := s.resources[storageClassesGVR]
	if scRes == nil {
		return
	}
	list := &storagev1.StorageClassList{}
	if err := scRes.store.GetList(ctx, scRes.listKey(""), storage.ListOptions{Recursive: true, ResourceVersion: "0"}, list); err != nil {
		return
	}
	if def := defaultStorageClass(list.Items); def != "" {
		pvc.Spec.StorageClassName = &def
	}
}

// defaultStorageClass picks the default among classes: the newest of
// those annotated default, by name when created at the same time.
func defaultStorageClass(classes []storagev1.StorageClass) string {
	var best *storagev1.StorageClass
	for i := range classes {
		c := &classes[i]
		if c.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" &&
			c.Annotations["storageclass.beta.kubernetes.io/is-default-class"] != "true" {
			continue
		}
		if best == nil || c.CreationTimestamp.After(best.CreationTimestamp.Time) ||
			c.CreationTimestamp.Equal(&best.CreationTimestamp) && c.Name < best.Name {
			best = c
		}
	}
	if best == nil {
		return ""
	}
	return best.Name
}
