// Package scheduling describes scheduling.k8s.io/v1 priorityclasses. No I/O.
package scheduling

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Upstream's limits for user-defined priority classes.
const (
	HighestUserDefinablePriority = 1000000000
	SystemPriorityClassPrefix    = "system-"
)

// Resources returns scheduling.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	s := &registry.BaseStrategy{
		DefaultFunc: func(o runtime.Object) {
			pc := o.(*schedulingv1.PriorityClass)
			if pc.PreemptionPolicy == nil {
				p := corev1.PreemptLowerPriority
				pc.PreemptionPolicy = &p
			}
		},
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			return validate(o.(*schedulingv1.PriorityClass))
		},
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			pc, opc := o.(*schedulingv1.PriorityClass), old.(*schedulingv1.PriorityClass)
			errs := validate(pc)
			if pc.Value != opc.Value {
				errs = append(errs, field.Forbidden(field.NewPath("value"), "may not be changed in an update."))
			}
			if opc.PreemptionPolicy != nil && (pc.PreemptionPolicy == nil || *pc.PreemptionPolicy != *opc.PreemptionPolicy) {
				errs = append(errs, field.Invalid(field.NewPath("preemptionPolicy"), pc.PreemptionPolicy, "field is immutable"))
			}
			return errs
		},
	}
	return []*registry.Resource{{
		GroupVersionResource: schedulingv1.SchemeGroupVersion.WithResource("priorityclasses"),
		Kind:                 "PriorityClass", SingularName: "priorityclass", ShortNames: []string{"pc"}, Strategy: s,
		New: func() runtime.Object { return &schedulingv1.PriorityClass{} }, NewList: func() runtime.Object { return &schedulingv1.PriorityClassList{} },
	}}
}

// systemClasses are the classes upstream creates; only they may use the
// system- prefix or values above the user limit.
var systemClasses = map[string]int32{"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}

func validate(pc *schedulingv1.PriorityClass) field.ErrorList {
	var errs field.ErrorList
	if v, ok := systemClasses[pc.Name]; ok {
		if pc.Value != v {
			errs = append(errs, field.Forbidden(field.NewPath("value"), "value of system priority classes is fixed"))
		}
		return errs
	}
	if strings.HasPrefix(pc.Name, SystemPriorityClassPrefix) {
		errs = append(errs, field.Forbidden(field.NewPath("metadata", "name"), "priority class names with '"+SystemPriorityClassPrefix+"' prefix are reserved for system use only"))
	}
	if pc.Value > HighestUserDefinablePriority {
		errs = append(errs, field.Forbidden(field.NewPath("value"), "maximum allowed value of a user defined priority is 1000000000"))
	}
	if p := pc.PreemptionPolicy; p != nil && *p != corev1.PreemptLowerPriority && *p != corev1.PreemptNever {
		errs = append(errs, field.NotSupported(field.NewPath("preemptionPolicy"), *p, []string{"Never", "PreemptLowerPriority"}))
	}
	return errs
}
