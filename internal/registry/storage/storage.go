package storage

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// IsDefaultAnnotation marks the class new claims without a class get.
const IsDefaultAnnotation = "storageclass.kubernetes.io/is-default-class"

// Upstream's limits on parameters.
const (
	maxProvisionerParameterSize = 256 * (1 << 10)
	maxProvisionerParameterLen  = 512
)

// Resources returns storage.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	s := &registry.BaseStrategy{
		DefaultFunc: func(o runtime.Object) { Default(o.(*storagev1.StorageClass)) },
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			return Validate(o.(*storagev1.StorageClass))
		},
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			return ValidateUpdate(o.(*storagev1.StorageClass), old.(*storagev1.StorageClass))
		},
	}
	return []*registry.Resource{{
		GroupVersionResource: storagev1.SchemeGroupVersion.WithResource("storageclasses"),
		Kind:                 "StorageClass", SingularName: "storageclass", ShortNames: []string{"sc"}, Strategy: s,
		New:     func() runtime.Object { return &storagev1.StorageClass{} },
		NewList: func() runtime.Object { return &storagev1.StorageClassList{} },
	}}
}

// Default sets upstream's defaults: reclaimPolicy Delete and
// volumeBindingMode Immediate.
func Default(sc *storagev1.StorageClass) {
	if sc.ReclaimPolicy == nil {
		p := corev1.PersistentVolumeReclaimDelete
		sc.ReclaimPolicy = &p
	}
	if sc.VolumeBindingMode == nil {
		m := storagev1.VolumeBindingImmediate
		sc.VolumeBindingMode = &m
	}
}

// Validate checks a class as upstream's ValidateStorageClass.
func Validate(sc *storagev1.StorageClass) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("provisioner")
	switch {
	case sc.Provisioner == "":
		errs = append(errs, field.Required(p, ""))
	case len(sc.Provisioner) > utilvalidation.DNS1123SubdomainMaxLength:
		errs = append(errs, field.TooLong(p, "" /*unused*/, utilvalidation.DNS1123SubdomainMaxLength))
	default:
		for _, msg := range utilvalidation.IsQualifiedName(strings.ToLower(sc.Provisioner)) {
			errs = append(errs, field.Invalid(p, sc.Provisioner, msg))
		}
	}
	size := 0
	pp := field.NewPath("parameters")
	if len(sc.Parameters) > maxProvisionerParameterLen {
		errs = append(errs, field.TooLong(pp, "" /*unused*/, maxProvisionerParameterLen))
	}
	for k, v := range sc.Parameters {
		if k == "" {
			errs = append(errs, field.Invalid(pp, k, "field can not be empty."))
		}
		size += len(k) + len(v)
	}
	if size > maxProvisionerParameterSize {
		errs = append(errs, field.TooLong(pp, "", maxProvisionerParameterSize))
	}
	if rp := sc.ReclaimPolicy; rp != nil && *rp != corev1.PersistentVolumeReclaimDelete && *rp != corev1.PersistentVolumeReclaimRetain {
		errs = append(errs, field.NotSupported(field.NewPath("reclaimPolicy"), *rp, []string{string(corev1.PersistentVolumeReclaimDelete), string(corev1.PersistentVolumeReclaimRetain)}))
	}
	if m := sc.VolumeBindingMode; m == nil {
		errs = append(errs, field.Required(field.NewPath("volumeBindingMode"), ""))
	} else if *m != storagev1.VolumeBindingImmediate && *m != storagev1.VolumeBindingWaitForFirstConsumer {
		errs = append(errs, field.NotSupported(field.NewPath("volumeBindingMode"), *m, []string{string(storagev1.VolumeBindingImmediate), string(storagev1.VolumeBindingWaitForFirstConsumer)}))
	}
	return errs
}

// ValidateUpdate also keeps parameters, provisioner, reclaimPolicy and
// volumeBindingMode as they were, as upstream.
func ValidateUpdate(sc, old *storagev1.StorageClass) field.ErrorList {
	errs := Validate(sc)
	if !apiequality.Semantic.DeepEqual(sc.Parameters, old.Parameters) {
		errs = append(errs, field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden."))
	}
	if sc.Provisioner != old.Provisioner {
		errs = append(errs, field.Forbidden(field.NewPath("provisioner"), "updates to provisioner are forbidden."))
	}
	if !apiequality.Semantic.DeepEqual(sc.ReclaimPolicy, old.ReclaimPolicy) {
		errs = append(errs, field.Forbidden(field.NewPath("reclaimPolicy"), "updates to reclaimPolicy are forbidden."))
	}
	if !apiequality.Semantic.DeepEqual(sc.VolumeBindingMode, old.VolumeBindingMode) {
		errs = append(errs, field.Invalid(field.NewPath("volumeBindingMode"), sc.VolumeBindingMode, "field is immutable"))
	}
	return errs
}

// IsDefault reports whether sc is marked the default class (the beta
// annotation counts too, as upstream).
func IsDefault(sc *storagev1.StorageClass) bool {
	return sc.Annotations[IsDefaultAnnotation] == "true" || sc.Annotations["storageclass.beta.kubernetes.io/is-default-class"] == "true"
}
