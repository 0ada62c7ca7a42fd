package rbac

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// check asserts that errs are exactly the wanted "field: substring" lines.
func check(t *testing.T, errs field.ErrorList, want []string) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("got %d errors %v, want %d %v", len(errs), errs, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
		}
	}
}

func TestValidateRules(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rule       rbacv1.PolicyRule
		namespaced bool
		want       []string
	}{
		{name: "resource rule", rule: rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}, namespaced: true},
		{name: "non-resource rule in a cluster role", rule: rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}}},
		{name: "no verbs", rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}},
			want: []string{"rules[0].verbs: Required value: verbs must contain at least one value"}},
		{name: "no groups or resources", rule: rbacv1.PolicyRule{Verbs: []string{"get"}},
			want: []string{"rules[0].apiGroups: Required value", "rules[0].resources: Required value"}},
		{name: "non-resource URL in a role", rule: rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/x"}}, namespaced: true,
			want: []string{"rules[0].nonResourceURLs: Invalid value: [\"/x\"]: namespaced rules cannot apply to non-resource URLs"}},
		{name: "mixed", rule: rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/x"}, Resources: []string{"pods"}},
			want: []string{"rules[0].nonResourceURLs: Invalid value: [\"/x\"]: rules cannot apply to both regular resources and non-resource URLs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, ValidateRules([]rbacv1.PolicyRule{tc.rule}, tc.namespaced, field.NewPath("rules")), tc.want)
		})
	}
}

func TestValidateClusterRoleAggregation(t *testing.T) {
	cr := &rbacv1.ClusterRole{AggregationRule: &rbacv1.AggregationRule{}}
	check(t, ValidateClusterRole(cr), []string{"aggregationRule.clusterRoleSelectors: Required value"})
	cr.AggregationRule.ClusterRoleSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"a b": "x"}}}
	check(t, ValidateClusterRole(cr), []string{"aggregationRule.clusterRoleSelectors[0].matchLabels: Invalid value: \"a b\""})
	cr.AggregationRule.ClusterRoleSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rbac.example.com/aggregate-to-x": "true"}}}
	check(t, ValidateClusterRole(cr), nil)
}

func TestValidateBinding(t *testing.T) {
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "r"}
	user := rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice"}
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: "builder"}
	for _, tc := range []struct {
		name       string
		ref        rbacv1.RoleRef
		subjects   []rbacv1.Subject
		namespaced bool
		want       []string
	}{
		{name: "role binding", ref: ref, subjects: []rbacv1.Subject{user, sa}, namespaced: true},
		{name: "cluster binding to a Role", ref: ref,
			want: []string{`roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"`}},
		{name: "bad kind", ref: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Pod", Name: "x"}, namespaced: true,
			want: []string{`roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"`}},
		{name: "bad group and no name", ref: rbacv1.RoleRef{APIGroup: "apps", Kind: "ClusterRole"}, namespaced: true,
			want: []string{`roleRef.apiGroup: Unsupported value: "apps"`, "roleRef.name: Required value"}},
		{name: "cluster binding to a service account without namespace", ref: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			subjects: []rbacv1.Subject{sa}, want: []string{"subjects[0].namespace: Required value"}},
		{name: "subject problems", ref: ref, namespaced: true, subjects: []rbacv1.Subject{
			{Kind: "User", Name: "bob"},
			{Kind: "ServiceAccount", APIGroup: "v1", Name: "Bad_Name"},
			{Kind: "Robot", Name: "r2"},
			{Kind: "Group"},
		}, want: []string{
			`subjects[0].apiGroup: Unsupported value: ""`,
			`subjects[1].name: Invalid value: "Bad_Name"`,
			`subjects[1].apiGroup: Unsupported value: "v1"`,
			`subjects[2].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"`,
			"subjects[3].name: Required value",
			`subjects[3].apiGroup: Unsupported value: ""`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, ValidateBinding(tc.ref, tc.subjects, tc.namespaced), tc.want)
		})
	}
}

func TestRoleRefImmutable(t *testing.T) {
	s := Resources()[1].Strategy
	old := &rbacv1.RoleBinding{RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "a"}}
	s.Default(old)
	cur := old.DeepCopy()
	cur.Subjects = []rbacv1.Subject{{Kind: "Group", Name: "devs"}}
	s.Default(cur)
	check(t, s.ValidateUpdate(context.Background(), cur, old), nil)
	cur.RoleRef.Name = "b"
	check(t, s.ValidateUpdate(context.Background(), cur, old), []string{`roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"b"}: cannot change roleRef`})
}

func TestDefaultBinding(t *testing.T) {
	ref := rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"}
	subjects := []rbacv1.Subject{{Kind: "User", Name: "a"}, {Kind: "Group", Name: "g"}, {Kind: "ServiceAccount", Name: "s", Namespace: "n"}}
	DefaultBinding(&ref, subjects)
	if ref.APIGroup != rbacv1.GroupName || subjects[0].APIGroup != rbacv1.GroupName || subjects[1].APIGroup != rbacv1.GroupName || subjects[2].APIGroup != "" {
		t.Fatalf("defaults: %+v %+v", ref, subjects)
	}
}

func TestNames(t *testing.T) {
	if msgs := ValidateName("system:node", false); len(msgs) != 0 {
		t.Errorf("system:node rejected: %v", msgs)
	}
	if msgs := ValidateName("a/b", false); len(msgs) == 0 {
		t.Error("a/b accepted")
	}
}

func TestTables(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rt := roleTable{}
	cells, err := rt.Cells(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "view", CreationTimestamp: metav1.NewTime(created)}})
	if err != nil || cells[0] != "view" || cells[1] != "2026-01-02T03:04:05Z" {
		t.Fatalf("role cells %v %v", cells, err)
	}
	bt := &bindingTable{now: func() time.Time { return created.Add(90 * time.Second) }}
	if n := len(bt.ColumnDefinitions()); n != 6 {
		t.Fatalf("%d binding columns", n)
	}
	cells, err = bt.Cells(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rb", CreationTimestamp: metav1.NewTime(created)},
		RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "edit"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "a"}, {Kind: "User", Name: "b"}, {Kind: "Group", Name: "g"},
			{Kind: "ServiceAccount", Namespace: "ns", Name: "sa"}}})
	want := []interface{}{"rb", "ClusterRole/edit", "90s", "a, b", "g", "ns/sa"}
	if err != nil || len(cells) != len(want) {
		t.Fatalf("binding cells %v %v", cells, err)
	}
	for i := range want {
		if cells[i] != want[i] {
			t.Errorf("cell %d = %v, want %v", i, cells[i], want[i])
		}
	}
}
