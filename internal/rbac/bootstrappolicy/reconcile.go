package bootstrappolicy

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Reconcile makes every default cluster role and binding exist, as
// kube-apiserver's RBAC post-start hook: absent ones are created; present
// ones whose autoupdate annotation is not "false" get what they lack
// added (labels, annotations, rules, aggregation selectors, subjects); a
// binding whose roleRef differs is replaced, since roleRef is immutable.
// Running it again changes nothing.
func Reconcile(ctx context.Context, cs kubernetes.Interface) error {
	for i := range ClusterRoles() {
		want := ClusterRoles()[i]
		if err := reconcileRole(ctx, cs, &want); err != nil {
			return fmt.Errorf("clusterrole %s: %w", want.Name, err)
		}
	}
	for i := range ClusterRoleBindings() {
		want := ClusterRoleBindings()[i]
		if err := reconcileBinding(ctx, cs, &want); err != nil {
			return fmt.Errorf("clusterrolebinding %s: %w", want.Name, err)
		}
	}
	return nil
}

func reconcileRole(ctx context.Context, cs kubernetes.Interface, want *rbacv1.ClusterRole) error {
	api := cs.RbacV1().ClusterRoles()
	have, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, want, metav1.CreateOptions{FieldManager: "skiff-rbac-bootstrap"})
		if apierrors.IsAlreadyExists(err) {
			return reconcileRole(ctx, cs, want)
		}
		return err
	}
	if err != nil {
		return err
	}
	if have.Annotations[AutoUpdateAnnotation] == "false" {
		return nil
	}
	next, changed := MergeRole(have, want)
	if !changed {
		return nil
	}
	_, err = api.Update(ctx, next, metav1.UpdateOptions{FieldManager: "skiff-rbac-bootstrap"})
	return err
}

// MergeRole returns have with want's labels, annotations and missing
// rules added (or, for an aggregated role, its missing selectors: the
// aggregation controller owns the rules), and whether anything changed.
func MergeRole(have, want *rbacv1.ClusterRole) (*rbacv1.ClusterRole, bool) {
	next := have.DeepCopy()
	changed := mergeMeta(&next.ObjectMeta, &want.ObjectMeta)
	if want.AggregationRule != nil {
		if next.AggregationRule == nil {
			next.AggregationRule = &rbacv1.AggregationRule{}
		}
		for _, sel := range want.AggregationRule.ClusterRoleSelectors {
			if !containsSelector(next.AggregationRule.ClusterRoleSelectors, sel) {
				next.AggregationRule.ClusterRoleSelectors = append(next.AggregationRule.ClusterRoleSelectors, sel)
				changed = true
			}
		}
		return next, changed
	}
	for _, r := range want.Rules {
		if !containsRule(next.Rules, r) {
			next.Rules = append(next.Rules, r)
			changed = true
		}
	}
	return next, changed
}

func reconcileBinding(ctx context.Context, cs kubernetes.Interface, want *rbacv1.ClusterRoleBinding) error {
	api := cs.RbacV1().ClusterRoleBindings()
	have, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, want, metav1.CreateOptions{FieldManager: "skiff-rbac-bootstrap"})
		if apierrors.IsAlreadyExists(err) {
			return reconcileBinding(ctx, cs, want)
		}
		return err
	}
	if err != nil {
		return err
	}
	if have.Annotations[AutoUpdateAnnotation] == "false" {
		return nil
	}
	if have.RoleRef != want.RoleRef {
		// roleRef cannot change: replace the binding, keeping its subjects.
		next := want.DeepCopy()
		next.Subjects = mergeSubjects(have.Subjects, want.Subjects)
		if err := api.Delete(ctx, have.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &have.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		_, err := api.Create(ctx, next, metav1.CreateOptions{FieldManager: "skiff-rbac-bootstrap"})
		return err
	}
	next := have.DeepCopy()
	changed := mergeMeta(&next.ObjectMeta, &want.ObjectMeta)
	if s := mergeSubjects(have.Subjects, want.Subjects); len(s) != len(have.Subjects) {
		next.Subjects, changed = s, true
	}
	if !changed {
		return nil
	}
	_, err = api.Update(ctx, next, metav1.UpdateOptions{FieldManager: "skiff-rbac-bootstrap"})
	return err
}

func mergeMeta(have, want *metav1.ObjectMeta) bool {
	changed := false
	for k, v := range want.Labels {
		if have.Labels[k] != v {
			if have.Labels == nil {
				have.Labels = map[string]string{}
			}
			have.Labels[k], changed = v, true
		}
	}
	for k, v := range want.Annotations {
		if _, ok := have.Annotations[k]; !ok {
			if have.Annotations == nil {
				have.Annotations = map[string]string{}
			}
			have.Annotations[k], changed = v, true
		}
	}
	return changed
}

func mergeSubjects(have, want []rbacv1.Subject) []rbacv1.Subject {
	out := append([]rbacv1.Subject(nil), have...)
	for _, s := range want {
		found := false
		for _, h := range have {
			if h == s {
				found = true
				break
			}
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}

func containsRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for i := range rules {
		if apiequality.Semantic.DeepEqual(rules[i], r) {
			return true
		}
	}
	return false
}

func containsSelector(sels []metav1.LabelSelector, s metav1.LabelSelector) bool {
	for i := range sels {
		if apiequality.Semantic.DeepEqual(sels[i], s) {
			return true
		}
	}
	return false
}
