package rbac_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// A Helm-chart-like manifest: the RBAC objects an operator chart carries.
const chart = `apiVersion: v1
kind: Namespace
metadata:
  name: app
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: operator
  namespace: app
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-view
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: ["example.com"]
  resources: ["widgets"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: operator
rules:
- apiGroups: [""]
  resources: ["pods", "configmaps"]
  verbs: ["*"]
- nonResourceURLs: ["/metrics"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: operator
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: operator
subjects:
- kind: ServiceAccount
  name: operator
  namespace: app
- kind: Group
  name: ops
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: leader-election
  namespace: app
rules:
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: leader-election
  namespace: app
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: leader-election
subjects:
- kind: ServiceAccount
  name: operator
  namespace: app
- kind: User
  name: alice
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: operator
  namespace: app
spec:
  replicas: 1
  selector:
    matchLabels: {app: operator}
  template:
    metadata:
      labels: {app: operator}
    spec:
      serviceAccountName: operator
      containers:
      - name: operator
        image: busybox:latest
        command: ["sleep", "3600"]
`

func expect(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

func clusterCIDR(salt int) string {
	return fmt.Sprintf("10.%d.0.0/16", 100+(os.Getpid()+salt)%100)
}

func TestRBAC(t *testing.T) {
	srv := framework.StartServer(t, "--cluster-cidr", clusterCIDR(7))
	k := srv.NewKubectl(t, "1.32")
	cs := srv.Client()

	t.Run("apply chart", func(t *testing.T) {
		out := k.Apply(chart)
		expect(t, "apply", out, "clusterrole.rbac.authorization.k8s.io/operator created",
			"clusterrolebinding.rbac.authorization.k8s.io/operator created", "role.rbac.authorization.k8s.io/leader-election created",
			"rolebinding.rbac.authorization.k8s.io/leader-election created", "deployment.apps/operator created")
		// Server-side apply creates and then merges by its field manager.
		ssa := "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: ssa\nrules:\n- apiGroups: [\"\"]\n  resources: [\"secrets\"]\n  verbs: [%s]\n"
		expect(t, "server-side apply", k.Apply(fmt.Sprintf(ssa, `"get"`), "--server-side"), "clusterrole.rbac.authorization.k8s.io/ssa serverside-applied")
		k.Apply(fmt.Sprintf(ssa, `"get", "list"`), "--server-side")
		expect(t, "ssa result", k.MustRun("get", "clusterrole", "ssa", "-o", "jsonpath={.rules[0].verbs}"), `["get","list"]`)
		// A second apply is a no-op.
		expect(t, "re-apply", k.Apply(chart), "clusterrole.rbac.authorization.k8s.io/operator unchanged",
			"rolebinding.rbac.authorization.k8s.io/leader-election unchanged")
	})

	t.Run("tables", func(t *testing.T) {
		out := k.MustRun("get", "clusterrole", "operator")
		expect(t, "get clusterrole", out, "NAME", "CREATED AT", "operator")
		out = k.MustRun("get", "roles", "-n", "app")
		expect(t, "get roles", out, "CREATED AT", "leader-election")
		out = k.MustRun("get", "rolebinding", "-n", "app")
		expect(t, "get rolebinding", out, "NAME", "ROLE", "AGE", "Role/leader-election")
		if strings.Contains(out, "USERS") {
			t.Errorf("USERS shown without -o wide:\n%s", out)
		}
		out = k.MustRun("get", "rolebinding", "-n", "app", "-o", "wide")
		expect(t, "get rolebinding -o wide", out, "USERS", "GROUPS", "SERVICEACCOUNTS", "alice", "app/operator")
		out = k.MustRun("get", "clusterrolebinding", "operator", "-o", "wide")
		expect(t, "get clusterrolebinding -o wide", out, "ClusterRole/operator", "ops", "app/operator")
		out = k.MustRun("explain", "clusterrole.aggregationRule")
		expect(t, "explain", out, "clusterRoleSelectors")
		out = k.MustRun("api-resources", "--api-group", "rbac.authorization.k8s.io")
		expect(t, "api-resources", out, "clusterrolebindings", "clusterroles", "rolebindings", "roles")
	})

	t.Run("roleRef immutable", func(t *testing.T) {
		r := k.Run("patch", "rolebinding", "leader-election", "-n", "app", "--type", "merge", "-p", `{"roleRef":{"name":"other"}}`)
		if r.Err == nil {
			t.Fatalf("roleRef change accepted: %s", r.Stdout)
		}
		expect(t, "patch roleRef", r.Stderr, "is invalid", "roleRef", "cannot change roleRef")
		rb, err := cs.RbacV1().RoleBindings("app").Get(framework.Context(t, 10*time.Second), "leader-election", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rb.RoleRef.Name = "other"
		_, err = cs.RbacV1().RoleBindings("app").Update(framework.Context(t, 10*time.Second), rb, metav1.UpdateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("update of roleRef: %v, want 422", err)
		}
		if st := err.(apierrors.APIStatus).Status(); st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "roleRef" {
			t.Errorf("422 causes do not name roleRef: %+v", st.Details)
		}
		// Bad input elsewhere: a Role with a non-resource URL.
		r = k.Run("create", "role", "bad", "-n", "app", "--verb=get", "--non-resource-url=/x")
		if r.Err == nil {
			t.Errorf("role with a non-resource URL created")
		}
	})

	t.Run("aggregation", func(t *testing.T) {
		ctx := framework.Context(t, 60*time.Second)
		has := func(name string) bool {
			cr, err := cs.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			for _, r := range cr.Rules {
				if len(r.Resources) == 1 && r.Resources[0] == "widgets" {
					return true
				}
			}
			return false
		}
		// view aggregates widgets-view; edit aggregates view (its label);
		// admin aggregates edit.
		for _, name := range []string{"view", "edit", "admin"} {
			if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
				return has(name), nil
			}); err != nil {
				t.Fatalf("%s never got the widgets rule", name)
			}
		}
		cr, _ := cs.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
		if len(cr.Rules) < 5 {
			t.Errorf("view has only %d rules", len(cr.Rules))
		}
		// Removing the label takes the rule away again.
		start := time.Now()
		k.MustRun("label", "clusterrole", "widgets-view", "rbac.authorization.k8s.io/aggregate-to-view-")
		defer func() {
			t.Logf("label removed → view re-aggregated in %v", time.Since(start).Round(time.Millisecond))
		}()
		if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
			return !has("view"), nil
		}); err != nil {
			t.Fatal("view kept the widgets rule after the label was removed")
		}
	})

	t.Run("auth", func(t *testing.T) {
		out := k.MustRun("auth", "can-i", "create", "pods")
		if strings.TrimSpace(out) != "yes" {
			t.Errorf("can-i create pods = %q", out)
		}
		out = k.MustRun("auth", "can-i", "get", "/healthz")
		expect(t, "can-i nonresource", out, "yes")
		out = k.MustRun("auth", "can-i", "--list")
		expect(t, "can-i --list", out, "*.*", "[*]")
		out = k.MustRun("auth", "whoami")
		expect(t, "whoami", out, "admin", "system:masters")
		out = k.MustRun("api-resources", "--api-group", "authorization.k8s.io", "-o", "wide")
		expect(t, "review discovery", out, "SelfSubjectAccessReview   create", "SelfSubjectRulesReview    create")
		// Bad reviews get upstream's 4xx; reviews are not stored or listed.
		ctx := framework.Context(t, 10*time.Second)
		_, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "exactly one of nonResourceAttributes or resourceAttributes must be specified") {
			t.Errorf("empty access review: %v, want 422", err)
		}
		err = cs.AuthorizationV1().RESTClient().Get().AbsPath("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").Do(ctx).Error()
		if !apierrors.IsMethodNotSupported(err) {
			t.Errorf("GET of access reviews: %v, want 405", err)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		ctx := framework.Context(t, 60*time.Second)
		checkDefaults(t, k)
		crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, "cluster-admin", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(crb.Subjects) != 1 || crb.Subjects[0].Kind != rbacv1.GroupKind || crb.Subjects[0].Name != "system:masters" {
			t.Errorf("cluster-admin binding subjects %+v", crb.Subjects)
		}
		// Deleted defaults come back at the next start; user objects stay.
		k.MustRun("delete", "clusterrole", "view", "system:node")
		k.MustRun("delete", "clusterrolebinding", "system:basic-user")
		srv.Stop()
		start := time.Now()
		srv.Start()
		checkDefaults(t, k)
		t.Logf("restart → deleted defaults back in %v", time.Since(start).Round(time.Millisecond))
		k.MustRun("get", "clusterrole", "operator")
		cr, err := cs.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cr.Labels["kubernetes.io/bootstrapping"] != "rbac-defaults" || cr.Annotations["rbac.authorization.kubernetes.io/autoupdate"] != "true" {
			t.Errorf("view after restart: labels %v annotations %v", cr.Labels, cr.Annotations)
		}
		if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
			cr, err := cs.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
			return err == nil && len(cr.Rules) > 0, nil
		}); err != nil {
			t.Error("re-created view was never aggregated")
		}
	})
}

func checkDefaults(t *testing.T, k *framework.Kubectl) {
	t.Helper()
	out := k.MustRun("get", "clusterroles", "-l", "kubernetes.io/bootstrapping=rbac-defaults")
	expect(t, "default clusterroles", out, "cluster-admin", "admin", "edit", "view", "system:node ", "system:node-proxier",
		"system:kube-scheduler", "system:kube-controller-manager", "system:discovery", "system:basic-user", "system:public-info-viewer")
	out = k.MustRun("get", "clusterrolebindings", "-o", "wide")
	expect(t, "default bindings", out, "ClusterRole/cluster-admin", "system:masters", "ClusterRole/system:discovery",
		"ClusterRole/system:basic-user", "ClusterRole/system:public-info-viewer", "system:authenticated")
}
