package bootstrappolicy

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The label and annotation every default object carries.
const (
	BootstrappingLabel   = "kubernetes.io/bootstrapping"
	BootstrappingValue   = "rbac-defaults"
	AutoUpdateAnnotation = "rbac.authorization.kubernetes.io/autoupdate"
)

// Well-known groups and users the default bindings name.
const (
	SystemMasters      = "system:masters"
	AllAuthenticated   = "system:authenticated"
	AllUnauthenticated = "system:unauthenticated"
	KubeProxy          = "system:kube-proxy"
	KubeScheduler      = "system:kube-scheduler"
	KubeControllerMgr  = "system:kube-controller-manager"
)

func meta(name string, labels map[string]string) metav1.ObjectMeta {
	l := map[string]string{BootstrappingLabel: BootstrappingValue}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Labels: l, Annotations: map[string]string{AutoUpdateAnnotation: "true"}}
}

func aggregation(label string) *rbacv1.AggregationRule {
	return &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{label: "true"}}}}
}

// ClusterRoles returns the default cluster roles. admin, edit and view
// are aggregated: their rules come from the system:aggregate-to-* roles
// (and any user role with the same labels), so they carry none here.
func ClusterRoles() []rbacv1.ClusterRole {
	health := []string{"/livez", "/readyz", "/healthz", "/version", "/version/"}
	agg := aggregateRules()
	roles := []rbacv1.ClusterRole{
		{ObjectMeta: meta("cluster-admin", nil), Rules: []rbacv1.PolicyRule{
			rule(verbs("*"), groups("*"), "*"),
			nonResource(verbs("*"), "*"),
		}},
		{ObjectMeta: meta("system:discovery", nil), Rules: []rbacv1.PolicyRule{
			nonResource(verbs("get"), append(append([]string(nil), health...), "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*")...),
		}},
		{ObjectMeta: meta("system:public-info-viewer", nil), Rules: []rbacv1.PolicyRule{nonResource(verbs("get"), health...)}},
		{ObjectMeta: meta("system:basic-user", nil), Rules: []rbacv1.PolicyRule{
			rule(verbs("create"), authz, "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
			rule(verbs("create"), authn, "selfsubjectreviews"),
		}},
		{ObjectMeta: meta("admin", map[string]string{}), AggregationRule: aggregation(AggregateToAdmin)},
		{ObjectMeta: meta("edit", map[string]string{AggregateToAdmin: "true"}), AggregationRule: aggregation(AggregateToEdit)},
		{ObjectMeta: meta("view", map[string]string{AggregateToEdit: "true"}), AggregationRule: aggregation(AggregateToView)},
		{ObjectMeta: meta("system:aggregate-to-admin", map[string]string{AggregateToAdmin: "true"}), Rules: agg["system:aggregate-to-admin"]},
		{ObjectMeta: meta("system:aggregate-to-edit", map[string]string{AggregateToEdit: "true"}), Rules: agg["system:aggregate-to-edit"]},
		{ObjectMeta: meta("system:aggregate-to-view", map[string]string{AggregateToView: "true"}), Rules: agg["system:aggregate-to-view"]},
		{ObjectMeta: meta("system:node", nil), Rules: []rbacv1.PolicyRule{
			rule(verbs("create"), authn, "tokenreviews"),
			rule(verbs("create"), authz, "subjectaccessreviews", "localsubjectaccessreviews"),
			rule(read, core, "services"),
			rule(verbs("create", "get", "list", "watch"), core, "nodes"),
			rule(verbs("update", "patch"), core, "nodes/status"),
			rule(verbs("update", "patch"), core, "nodes"),
			eventsRule(),
			rule(read, core, "pods"),
			rule(verbs("create", "delete"), core, "pods"),
			rule(verbs("update", "patch"), core, "pods/status"),
			rule(verbs("create"), core, "pods/eviction"),
			rule(verbs("get", "list", "watch"), core, "secrets", "configmaps"),
			rule(verbs("get"), core, "persistentvolumeclaims", "persistentvolumes"),
			rule(verbs("get"), core, "endpoints"),
			rule(verbs("create", "get", "list", "watch"), certificates, "certificatesigningrequests"),
			rule(verbs("get", "create", "update", "patch", "delete"), coordination, "leases"),
			rule(read, storage, "volumeattachments", "csidrivers"),
			rule(verbs("update", "patch"), core, "persistentvolumeclaims/status"),
			rule(verbs("create"), core, "serviceaccounts/token"),
			rule(read, storage, "csinodes"),
			rule(verbs("create", "get", "update", "patch", "delete"), storage, "csinodes"),
			rule(read, discovery, "endpointslices"),
		}},
		{ObjectMeta: meta("system:node-proxier", nil), Rules: []rbacv1.PolicyRule{
			rule(verbs("list", "watch"), core, "services", "endpoints"),
			rule(read, core, "nodes"),
			eventsRule(),
			rule(verbs("list", "watch"), discovery, "endpointslices"),
		}},
		{ObjectMeta: meta("system:kube-scheduler", nil), Rules: []rbacv1.PolicyRule{
			eventsRule(),
			rule(verbs("create"), coordination, "leases"),
			named(rule(verbs("get", "update"), coordination, "leases"), "kube-scheduler"),
			rule(read, core, "nodes"),
			rule(verbs("get", "list", "watch", "delete"), core, "pods"),
			rule(verbs("create"), core, "bindings", "pods/binding"),
			rule(verbs("patch", "update"), core, "pods/status"),
			rule(read, core, "replicationcontrollers", "services"),
			rule(read, apps, "replicasets", "statefulsets"),
			rule(read, policyGroup, "poddisruptionbudgets"),
			rule(read, core, "persistentvolumeclaims", "persistentvolumes"),
			rule(verbs("create"), authn, "tokenreviews"),
			rule(verbs("create"), authz, "subjectaccessreviews"),
			rule(read, storage, "csinodes", "csidrivers", "csistoragecapacities", "storageclasses"),
			rule(read, core, "namespaces"),
			rule(read, schedulingGrp, "priorityclasses"),
		}},
		{ObjectMeta: meta("system:kube-controller-manager", nil), Rules: []rbacv1.PolicyRule{
			eventsRule(),
			rule(verbs("create"), coordination, "leases"),
			named(rule(verbs("get", "update"), coordination, "leases"), "kube-controller-manager"),
			rule(verbs("create"), core, "secrets", "serviceaccounts"),
			rule(verbs("delete"), core, "secrets"),
			rule(verbs("get"), core, "namespaces", "secrets", "serviceaccounts"),
			rule(verbs("update"), core, "secrets", "serviceaccounts"),
			rule(verbs("create"), authn, "tokenreviews"),
			rule(verbs("create"), authz, "subjectaccessreviews"),
			rule(verbs("list", "watch"), groups("*"), "*"),
			rule(verbs("create"), core, "serviceaccounts/token"),
		}},
	}
	return roles
}

func binding(role string, subjects ...rbacv1.Subject) rbacv1.ClusterRoleBinding {
	if subjects == nil {
		subjects = []rbacv1.Subject{}
	}
	return rbacv1.ClusterRoleBinding{ObjectMeta: meta(role, nil),
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: subjects}
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// ClusterRoleBindings returns the default bindings, each named after its
// role. system:node binds nobody, as upstream (nodes are authorized by the
// Node authorizer there).
func ClusterRoleBindings() []rbacv1.ClusterRoleBinding {
	return []rbacv1.ClusterRoleBinding{
		binding("cluster-admin", group(SystemMasters)),
		binding("system:discovery", group(AllAuthenticated)),
		binding("system:basic-user", group(AllAuthenticated)),
		binding("system:public-info-viewer", group(AllAuthenticated), group(AllUnauthenticated)),
		binding("system:node"),
		binding("system:node-proxier", user(KubeProxy)),
		binding("system:kube-controller-manager", user(KubeControllerMgr)),
		binding("system:kube-scheduler", user(KubeScheduler)),
	}
}
