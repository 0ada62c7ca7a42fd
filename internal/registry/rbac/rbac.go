package rbac

import (
	"context"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns rbac.authorization.k8s.io/v1 resources. None has a
// short name, as upstream.
func Resources() []*registry.Resource {
	gv := rbacv1.SchemeGroupVersion
	now := time.Now
	return []*registry.Resource{{
		GroupVersionResource: gv.WithResource("roles"),
		Kind:                 "Role", SingularName: "role", Namespaced: true, ValidateName: ValidateName,
		Strategy: &registry.BaseStrategy{
			ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
				return ValidateRules(o.(*rbacv1.Role).Rules, true, field.NewPath("rules"))
			},
		},
		New:     func() runtime.Object { return &rbacv1.Role{} },
		NewList: func() runtime.Object { return &rbacv1.RoleList{} },
		Table:   &roleTable{},
	}, {
		GroupVersionResource: gv.WithResource("rolebindings"),
		Kind:                 "RoleBinding", SingularName: "rolebinding", Namespaced: true, ValidateName: ValidateName,
		Strategy: &registry.BaseStrategy{
			DefaultFunc: func(o runtime.Object) {
				rb := o.(*rbacv1.RoleBinding)
				DefaultBinding(&rb.RoleRef, rb.Subjects)
			},
			ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
				rb := o.(*rbacv1.RoleBinding)
				return ValidateBinding(rb.RoleRef, rb.Subjects, true)
			},
			ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
				rb, orb := o.(*rbacv1.RoleBinding), old.(*rbacv1.RoleBinding)
				return append(ValidateBinding(rb.RoleRef, rb.Subjects, true), ValidateRoleRefUpdate(rb.RoleRef, orb.RoleRef)...)
			},
		},
		New:     func() runtime.Object { return &rbacv1.RoleBinding{} },
		NewList: func() runtime.Object { return &rbacv1.RoleBindingList{} },
		Table:   &bindingTable{now: now},
	}, {
		GroupVersionResource: gv.WithResource("clusterroles"),
		Kind:                 "ClusterRole", SingularName: "clusterrole", ValidateName: ValidateName,
		Strategy: &registry.BaseStrategy{
			ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
				return ValidateClusterRole(o.(*rbacv1.ClusterRole))
			},
		},
		New:     func() runtime.Object { return &rbacv1.ClusterRole{} },
		NewList: func() runtime.Object { return &rbacv1.ClusterRoleList{} },
		Table:   &roleTable{},
	}, {
		GroupVersionResource: gv.WithResource("clusterrolebindings"),
		Kind:                 "ClusterRoleBinding", SingularName: "clusterrolebinding", ValidateName: ValidateName,
		Strategy: &registry.BaseStrategy{
			DefaultFunc: func(o runtime.Object) {
				crb := o.(*rbacv1.ClusterRoleBinding)
				DefaultBinding(&crb.RoleRef, crb.Subjects)
			},
			ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
				crb := o.(*rbacv1.ClusterRoleBinding)
				return ValidateBinding(crb.RoleRef, crb.Subjects, false)
			},
			ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
				crb, ocrb := o.(*rbacv1.ClusterRoleBinding), old.(*rbacv1.ClusterRoleBinding)
				return append(ValidateBinding(crb.RoleRef, crb.Subjects, false), ValidateRoleRefUpdate(crb.RoleRef, ocrb.RoleRef)...)
			},
		},
		New:     func() runtime.Object { return &rbacv1.ClusterRoleBinding{} },
		NewList: func() runtime.Object { return &rbacv1.ClusterRoleBindingList{} },
		Table:   &bindingTable{now: now},
	}}
}

// ValidateName is upstream's rule for RBAC object names: any path segment
// (so "system:node" is fine), not a DNS name.
func ValidateName(name string, prefix bool) []string {
	return path.ValidatePathSegmentName(name, prefix)
}

// DefaultBinding sets upstream's defaults: roleRef.apiGroup and the
// apiGroup of User and Group subjects are rbac.authorization.k8s.io.
func DefaultBinding(ref *rbacv1.RoleRef, subjects []rbacv1.Subject) {
	if ref.APIGroup == "" {
		ref.APIGroup = rbacv1.GroupName
	}
	for i := range subjects {
		s := &subjects[i]
		if s.APIGroup == "" && (s.Kind == rbacv1.UserKind || s.Kind == rbacv1.GroupKind) {
			s.APIGroup = rbacv1.GroupName
		}
	}
}
