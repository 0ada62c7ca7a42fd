// Package coordination describes coordination.k8s.io/v1 leases. No I/O.
package coordination

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns coordination.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	// As upstream, a PUT of an absent Lease creates it.
	s := &registry.BaseStrategy{CreateOnUpdate: true, ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
		l := o.(*coordinationv1.Lease)
		var errs field.ErrorList
		if d := l.Spec.LeaseDurationSeconds; d != nil && *d <= 0 {
			errs = append(errs, field.Invalid(field.NewPath("spec", "leaseDurationSeconds"), *d, "must be greater than 0"))
		}
		if t := l.Spec.LeaseTransitions; t != nil && *t < 0 {
			errs = append(errs, field.Invalid(field.NewPath("spec", "leaseTransitions"), *t, "must be greater than or equal to 0"))
		}
		return errs
	}}
	return []*registry.Resource{{
		GroupVersionResource: coordinationv1.SchemeGroupVersion.WithResource("leases"),
		Kind:                 "Lease", SingularName: "lease", Namespaced: true, Strategy: s,
		New: func() runtime.Object { return &coordinationv1.Lease{} }, NewList: func() runtime.Object { return &coordinationv1.LeaseList{} },
	}}
}
