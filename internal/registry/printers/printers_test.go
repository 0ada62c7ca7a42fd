package printers

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func names(t *testing.T, gvr schema.GroupVersionResource) string {
	t.Helper()
	tc := ForClock(gvr, clock)
	if tc == nil {
		t.Fatalf("no printer for %s", gvr)
	}
	var out []string
	for _, c := range tc.ColumnDefinitions() {
		out = append(out, c.Name)
	}
	return strings.Join(out, ",")
}

func cells(t *testing.T, gvr schema.GroupVersionResource, obj runtime.Object) []interface{} {
	t.Helper()
	c, err := ForClock(gvr, clock).Cells(obj)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestColumnsAsUpstream(t *testing.T) {
	for gvr, want := range map[schema.GroupVersionResource]string{
		{Version: "v1", Resource: "pods"}:                       "Name,Ready,Status,Restarts,Age,IP,Node,Nominated Node,Readiness Gates",
		{Version: "v1", Resource: "services"}:                   "Name,Type,Cluster-IP,External-IP,Port(s),Age,Selector",
		{Version: "v1", Resource: "nodes"}:                      "Name,Status,Roles,Age,Version,Internal-IP,External-IP,OS-Image,Kernel-Version,Container-Runtime",
		{Group: "apps", Version: "v1", Resource: "deployments"}: "Name,Ready,Up-to-date,Available,Age,Containers,Images,Selector",
		{Group: "batch", Version: "v1", Resource: "jobs"}:       "Name,Status,Completions,Duration,Age,Containers,Images,Selector",
		{Version: "v1", Resource: "namespaces"}:                 "Name,Status,Age",
		{Version: "v1", Resource: "configmaps"}:                 "Name,Data,Age",
	} {
		if got := names(t, gvr); got != want {
			t.Errorf("%s columns %s, want %s", gvr.Resource, got, want)
		}
	}
}

func TestPodCells(t *testing.T) {
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	created := metav1.NewTime(now.Add(-90 * time.Second))
	running := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: created},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.42.0.5", ContainerStatuses: []corev1.ContainerStatus{
			{Name: "a", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			{Name: "b", RestartCount: 3, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(now.Add(-5 * time.Minute))}}},
		}},
	}
	c := cells(t, pods, running)
	want := []interface{}{"web", "1/2", "CrashLoopBackOff", "3 (5m ago)", "90s", "10.42.0.5", "n1", "<none>", "<none>"}
	for i := range want {
		if c[i] != want[i] {
			t.Errorf("cell %d = %v, want %v (row %v)", i, c[i], want[i], c)
		}
	}
	deleting := running.DeepCopy()
	deleting.DeletionTimestamp = &created
	if c := cells(t, pods, deleting); c[2] != "Terminating" {
		t.Errorf("deleting pod status %v", c[2])
	}
	initPod := &corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i"}}, Containers: []corev1.Container{{Name: "c"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{{Name: "i", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
	if c := cells(t, pods, initPod); c[2] != "Init:0/1" {
		t.Errorf("initializing pod status %v", c[2])
	}
}

func TestServiceAndDeploymentCells(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.43.0.9",
		Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}}, Selector: map[string]string{"app": "x"}}}
	c := cells(t, schema.GroupVersionResource{Version: "v1", Resource: "services"}, svc)
	if c[1] != "NodePort" || c[2] != "10.43.0.9" || c[3] != "<none>" || c[4] != "80:30080/TCP" || c[6] != "app=x" {
		t.Errorf("service row %v", c)
	}
	lb := svc.DeepCopy()
	lb.Spec.Type = corev1.ServiceTypeLoadBalancer
	if c := cells(t, schema.GroupVersionResource{Version: "v1", Resource: "services"}, lb); c[3] != "<pending>" {
		t.Errorf("pending load balancer external IP %v", c[3])
	}
	three := int32(3)
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &three, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "w"}},
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "n", Image: "nginx:1"}}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2}}
	c = cells(t, schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, d)
	if c[1] != "2/3" || c[2] != int64(3) || c[3] != int64(2) || c[5] != "n" || c[6] != "nginx:1" || c[7] != "app=w" {
		t.Errorf("deployment row %v", c)
	}
}
