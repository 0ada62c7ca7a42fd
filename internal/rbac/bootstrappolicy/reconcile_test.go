package bootstrappolicy

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-sh/skiff/internal/registry/rbac"
)

// Every default object passes the API server's own validation.
func TestDefaultsValid(t *testing.T) {
	for _, cr := range ClusterRoles() {
		if errs := rbac.ValidateClusterRole(&cr); len(errs) > 0 {
			t.Errorf("clusterrole %s: %v", cr.Name, errs)
		}
		if msgs := rbac.ValidateName(cr.Name, false); len(msgs) > 0 {
			t.Errorf("clusterrole name %s: %v", cr.Name, msgs)
		}
	}
	for _, b := range ClusterRoleBindings() {
		if errs := rbac.ValidateBinding(b.RoleRef, b.Subjects, false); len(errs) > 0 {
			t.Errorf("clusterrolebinding %s: %v", b.Name, errs)
		}
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	// A trimmed view (rules removed), a protected edit, and a binding
	// pointing at the wrong role.
	view := ClusterRoles()[6]
	view.AggregationRule = nil
	edit := ClusterRoles()[5]
	edit.Annotations = map[string]string{AutoUpdateAnnotation: "false"}
	edit.AggregationRule = nil
	aggView := ClusterRoles()[9]
	aggView.Rules = aggView.Rules[:1]
	basic := ClusterRoleBindings()[2]
	basic.RoleRef.Name = "view"
	basic.Subjects = []rbacv1.Subject{user("someone")}
	cs := fake.NewClientset(&view, &edit, &aggView, &basic)

	if err := Reconcile(ctx, cs); err != nil {
		t.Fatal(err)
	}
	crs, _ := cs.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if len(crs.Items) != len(ClusterRoles()) {
		t.Fatalf("%d cluster roles, want %d", len(crs.Items), len(ClusterRoles()))
	}
	got, _ := cs.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
	if got.AggregationRule == nil || got.AggregationRule.ClusterRoleSelectors[0].MatchLabels[AggregateToView] != "true" {
		t.Errorf("view aggregation not restored: %+v", got.AggregationRule)
	}
	got, _ = cs.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
	if got.AggregationRule != nil {
		t.Errorf("autoupdate=false role was changed: %+v", got.AggregationRule)
	}
	got, _ = cs.RbacV1().ClusterRoles().Get(ctx, "system:aggregate-to-view", metav1.GetOptions{})
	if len(got.Rules) != len(ClusterRoles()[9].Rules) {
		t.Errorf("aggregate-to-view has %d rules, want %d", len(got.Rules), len(ClusterRoles()[9].Rules))
	}
	b, _ := cs.RbacV1().ClusterRoleBindings().Get(ctx, "system:basic-user", metav1.GetOptions{})
	if b.RoleRef.Name != "system:basic-user" || len(b.Subjects) != 2 {
		t.Errorf("basic-user binding not replaced: %+v %+v", b.RoleRef, b.Subjects)
	}
	b, _ = cs.RbacV1().ClusterRoleBindings().Get(ctx, "cluster-admin", metav1.GetOptions{})
	if len(b.Subjects) != 1 || b.Subjects[0].Name != SystemMasters || b.Labels[BootstrappingLabel] != BootstrappingValue {
		t.Errorf("cluster-admin binding: %+v", b)
	}

	// A second run changes nothing.
	before := len(cs.Actions())
	if err := Reconcile(ctx, cs); err != nil {
		t.Fatal(err)
	}
	for _, a := range cs.Actions()[before:] {
		if a.GetVerb() != "get" {
			t.Errorf("second run did %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}
