package bootstrappolicy

import rbacv1 "k8s.io/api/rbac/v1"

// Verb sets upstream's policy builds on.
var (
	read      = []string{"get", "list", "watch"}
	readWrite = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)

// rule is a resource rule; nonResource a non-resource URL rule.
func rule(verbs []string, groups []string, resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources}
}

func nonResource(verbs []string, urls ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, NonResourceURLs: urls}
}

func named(r rbacv1.PolicyRule, names ...string) rbacv1.PolicyRule {
	r.ResourceNames = names
	return r
}

func verbs(v ...string) []string  { return v }
func groups(g ...string) []string { return g }

var (
	core          = groups("")
	apps          = groups("apps")
	batch         = groups("batch")
	autoscaling   = groups("autoscaling")
	policyGroup   = groups("policy")
	networking    = groups("networking.k8s.io")
	discovery     = groups("discovery.k8s.io")
	coordination  = groups("coordination.k8s.io")
	storage       = groups("storage.k8s.io")
	authn         = groups("authentication.k8s.io")
	authz         = groups("authorization.k8s.io")
	rbacGroup     = groups("rbac.authorization.k8s.io")
	certificates  = groups("certificates.k8s.io")
	eventsGroups  = groups("", "events.k8s.io")
	extensions    = groups("extensions")
	schedulingGrp = groups("scheduling.k8s.io")
)

// eventsRule lets a component record events (both APIs).
func eventsRule() rbacv1.PolicyRule {
	return rule(verbs("create", "update", "patch"), eventsGroups, "events")
}

// Aggregation labels: a ClusterRole carrying one of these has its rules
// folded into admin, edit or view by the clusterrole-aggregation controller.
const (
	AggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
	AggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	AggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
)

func aggregateRules() map[string][]rbacv1.PolicyRule {
	return map[string][]rbacv1.PolicyRule{
		"system:aggregate-to-admin": {
			rule(verbs("create"), authz, "localsubjectaccessreviews"),
			rule(readWrite, rbacGroup, "rolebindings", "roles"),
		},
		"system:aggregate-to-edit": {
			rule(verbs("impersonate"), core, "serviceaccounts"),
			rule(readWrite, core, "pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"),
			rule(verbs("create"), core, "pods/eviction"),
			rule(readWrite, core, "replicationcontrollers", "replicationcontrollers/scale", "services", "services/proxy",
				"endpoints", "persistentvolumeclaims", "configmaps", "secrets", "serviceaccounts"),
			rule(verbs("create"), core, "serviceaccounts/token"),
			rule(readWrite, apps, "statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
				"deployments/rollback", "replicasets", "replicasets/scale"),
			rule(readWrite, autoscaling, "horizontalpodautoscalers"),
			rule(readWrite, batch, "jobs", "cronjobs"),
			rule(readWrite, extensions, "daemonsets", "deployments", "deployments/scale", "deployments/rollback", "ingresses",
				"replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies"),
			rule(readWrite, policyGroup, "poddisruptionbudgets"),
			rule(readWrite, networking, "networkpolicies", "ingresses"),
			rule(readWrite, coordination, "leases"),
		},
		"system:aggregate-to-view": {
			rule(read, core, "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
				"services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"),
			rule(read, core, "limitranges", "resourcequotas", "bindings", "events", "pods/status", "resourcequotas/status",
				"namespaces/status", "replicationcontrollers/status", "pods/log"),
			rule(read, core, "namespaces"),
			rule(read, discovery, "endpointslices"),
			rule(read, apps, "controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale", "daemonsets",
				"daemonsets/status", "deployments", "deployments/status", "deployments/scale", "replicasets", "replicasets/status",
				"replicasets/scale"),
			rule(read, autoscaling, "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
			rule(read, batch, "jobs", "cronjobs", "cronjobs/status", "jobs/status"),
			rule(read, extensions, "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
				"ingresses", "ingresses/status", "replicasets", "replicasets/scale", "replicasets/status",
				"replicationcontrollers/scale", "networkpolicies"),
			rule(read, policyGroup, "poddisruptionbudgets", "poddisruptionbudgets/status"),
			rule(read, networking, "ingresses", "ingresses/status", "networkpolicies"),
		},
	}
}
