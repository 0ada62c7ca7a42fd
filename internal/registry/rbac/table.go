package rbac

import (
	"fmt"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/skiff-sh/skiff/internal/registry"
)

var (
	nameCol = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]}
	timeDoc = metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]
)

// roleTable prints kube-apiserver's role columns: NAME, CREATED AT (an
// RFC 3339 time, not an age).
type roleTable struct{}

var _ registry.TableConvertor = (*roleTable)(nil)

func (roleTable) ColumnDefinitions() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{nameCol, {Name: "Created At", Type: "date", Description: timeDoc}}
}

func (roleTable) Cells(obj runtime.Object) ([]interface{}, error) {
	var m *metav1.ObjectMeta
	switch o := obj.(type) {
	case *rbacv1.Role:
		m = &o.ObjectMeta
	case *rbacv1.ClusterRole:
		m = &o.ObjectMeta
	default:
		return nil, fmt.Errorf("rbac: cannot print %T as a role", obj)
	}
	return []interface{}{m.Name, m.CreationTimestamp.UTC().Format(time.RFC3339)}, nil
}

// bindingTable prints NAME ROLE AGE, and USERS GROUPS SERVICEACCOUNTS
// with -o wide, as kube-apiserver.
type bindingTable struct{ now func() time.Time }

var _ registry.TableConvertor = (*bindingTable)(nil)

func (*bindingTable) ColumnDefinitions() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameCol,
		{Name: "Role", Type: "string", Description: rbacv1.RoleBinding{}.SwaggerDoc()["roleRef"]},
		{Name: "Age", Type: "string", Description: timeDoc},
		{Name: "Users", Type: "string", Priority: 1, Description: "Users in the roleBinding"},
		{Name: "Groups", Type: "string", Priority: 1, Description: "Groups in the roleBinding"},
		{Name: "ServiceAccounts", Type: "string", Priority: 1, Description: "ServiceAccounts in the roleBinding"},
	}
}

func (t *bindingTable) Cells(obj runtime.Object) ([]interface{}, error) {
	var (
		m        *metav1.ObjectMeta
		ref      rbacv1.RoleRef
		subjects []rbacv1.Subject
	)
	switch o := obj.(type) {
	case *rbacv1.RoleBinding:
		m, ref, subjects = &o.ObjectMeta, o.RoleRef, o.Subjects
	case *rbacv1.ClusterRoleBinding:
		m, ref, subjects = &o.ObjectMeta, o.RoleRef, o.Subjects
	default:
		return nil, fmt.Errorf("rbac: cannot print %T as a binding", obj)
	}
	age := "<unknown>"
	if ts := m.CreationTimestamp; !ts.IsZero() {
		age = duration.HumanDuration(t.now().Sub(ts.Time))
	}
	users, groups, sas := SubjectStrings(subjects)
	return []interface{}{m.Name, ref.Kind + "/" + ref.Name, age,
		strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", ")}, nil
}

// SubjectStrings splits subjects into users, groups and service accounts
// ("namespace/name"), as upstream's printer.
func SubjectStrings(subjects []rbacv1.Subject) (users, groups, sas []string) {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		case rbacv1.ServiceAccountKind:
			sas = append(sas, s.Namespace+"/"+s.Name)
		}
	}
	return users, groups, sas
}
