package quota

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func list(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func podWith(requests, limits corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}}}}}
}

func TestCharge(t *testing.T) {
	now := time.Now()
	q := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: list("pods", "9", "count/pods", "9", "requests.cpu", "9",
		"limits.memory", "9Gi", "configmaps", "9", "count/deployments.apps", "9", "services", "9", "services.nodeports", "9",
		"services.loadbalancers", "9", "requests.storage", "9Gi", "fast.storageclass.storage.k8s.io/requests.storage", "9Gi")}}
	fast := "fast"
	done := podWith(list("cpu", "1"), nil)
	done.Status.Phase = corev1.PodSucceeded
	for _, tc := range []struct {
		name string
		q    *corev1.ResourceQuota
		gr   schema.GroupResource
		obj  runtime.Object
		want map[string]string
	}{
		{"pod", q, podsGR, podWith(list("cpu", "250m"), list("memory", "1Gi")),
			map[string]string{"pods": "1", "count/pods": "1", "requests.cpu": "250m", "limits.memory": "1Gi"}},
		{"finished pod charges nothing", q, podsGR, done, nil},
		{"configmap", q, schema.GroupResource{Resource: "configmaps"}, &corev1.ConfigMap{}, map[string]string{"configmaps": "1"}},
		{"deployment by count", q, schema.GroupResource{Group: "apps", Resource: "deployments"}, &corev1.ConfigMap{},
			map[string]string{"count/deployments.apps": "1"}},
		{"not limited", q, schema.GroupResource{Resource: "secrets"}, &corev1.Secret{}, nil},
		{"load balancer", q, servicesGR, &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080}, {Port: 443, NodePort: 30443}}}},
			map[string]string{"services": "1", "services.loadbalancers": "1", "services.nodeports": "2"}},
		{"claim of a class", q, claimsGR, &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &fast,
			Resources: corev1.VolumeResourceRequirements{Requests: list("storage", "2Gi")}}},
			map[string]string{"requests.storage": "2Gi", "fast.storageclass.storage.k8s.io/requests.storage": "2Gi"}},
		{"scoped quota ignores other kinds", &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: list("configmaps", "1"),
			Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}}},
			schema.GroupResource{Resource: "configmaps"}, &corev1.ConfigMap{}, nil},
		{"out of scope pod", &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: list("pods", "1"),
			Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}}}, podsGR, podWith(list("cpu", "1"), nil), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Charge(tc.q, tc.gr, tc.obj, now)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if q, ok := got[corev1.ResourceName(k)]; !ok || q.Cmp(resource.MustParse(v)) != 0 {
					t.Fatalf("%s: got %v, want %s (all %v)", k, q.String(), v, got)
				}
			}
		})
	}
}

func TestMissingRequirements(t *testing.T) {
	q := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: list("cpu", "1", "limits.memory", "1Gi", "pods", "3")}}
	p := podWith(nil, nil)
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "d", Resources: corev1.ResourceRequirements{
		Requests: list("cpu", "1"), Limits: list("memory", "1Gi")}})
	if got, want := MissingRequirements(q, p), "limits.memory for: c; requests.cpu for: c"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := MissingRequirements(&corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: list("pods", "3")}}, p); got != "" {
		t.Fatalf("a pods-only quota requires nothing, got %q", got)
	}
}

func TestExceedsAndFormat(t *testing.T) {
	hard, used := list("pods", "3", "requests.cpu", "1"), list("pods", "2", "requests.cpu", "750m")
	if over := Exceeds(hard, used, list("pods", "1", "requests.cpu", "250m")); len(over) != 0 {
		t.Fatalf("exactly at the limit is allowed, got %v", over)
	}
	over := Exceeds(hard, used, list("pods", "2", "requests.cpu", "500m"))
	if got, want := Format(used, over), "pods=2,requests.cpu=750m"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	sum := Add(used, list("pods", "1", "secrets", "1"))
	if p, s := sum["pods"], sum["secrets"]; p.Value() != 3 || s.Value() != 1 {
		t.Fatalf("Add: %v", sum)
	}
	if u := used["pods"]; u.Value() != 2 {
		t.Fatal("Add must not change its input")
	}
}
