// Package policy describes policy/v1 poddisruptionbudgets. No I/O.
package policy

import (
	"context"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/validation"
)

// Resources returns policy/v1 resources.
func Resources() []*registry.Resource {
	s := &registry.BaseStrategy{HasStatus: true, ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
		pdb := o.(*policyv1.PodDisruptionBudget)
		spec := field.NewPath("spec")
		var errs field.ErrorList
		if pdb.Spec.MinAvailable != nil && pdb.Spec.MaxUnavailable != nil {
			errs = append(errs, field.Invalid(spec, pdb.Spec, "minAvailable and maxUnavailable cannot be both set"))
		}
		if pdb.Spec.Selector != nil {
			errs = append(errs, validation.ValidateLabelSelector(pdb.Spec.Selector, spec.Child("selector"))...)
		}
		return errs
	}}
	return []*registry.Resource{{
		GroupVersionResource: policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets"),
		Kind:                 "PodDisruptionBudget", SingularName: "poddisruptionbudget", ShortNames: []string{"pdb"}, Namespaced: true, Strategy: s,
		New: func() runtime.Object { return &policyv1.PodDisruptionBudget{} }, NewList: func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} },
		Subresources: map[string]*registry.Subresource{"status": {Strategy: &registry.StatusStrategy{Parent: s}, Verbs: []string{"get", "patch", "update"}}},
	}}
}
