package apiserver_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func deployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1.25"}}}},
		},
	}
}

func TestObjectMetaAndGeneration(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cm.Name, "gen-") || len(cm.Name) <= 4 || cm.UID == "" || cm.CreationTimestamp.IsZero() || cm.ResourceVersion == "" {
		t.Fatalf("generated metadata: %+v", cm.ObjectMeta)
	}
	d, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 1 || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		d.Spec.Strategy.RollingUpdate.MaxSurge.String() != "25%" || *d.Spec.RevisionHistoryLimit != 10 || *d.Spec.ProgressDeadlineSeconds != 600 {
		t.Errorf("deployment defaults: generation %d spec %+v", d.Generation, d.Spec)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if d.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways || c.ImagePullPolicy != corev1.PullIfNotPresent || c.TerminationMessagePath != "/dev/termination-log" {
		t.Errorf("pod template defaults: %+v", d.Spec.Template.Spec)
	}
	d.Labels = map[string]string{"x": "y"}
	if d, err = cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil || d.Generation != 1 {
		t.Fatalf("label change bumped generation to %d (%v)", d.Generation, err)
	}
	stale := d.DeepCopy()
	d.Spec.Replicas = ptr(int32(3))
	if d, err = cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil || d.Generation != 2 {
		t.Fatalf("spec change: generation %d (%v), want 2", d.Generation, err)
	}
	stale.Spec.Replicas = ptr(int32(5))
	if _, err := cs.AppsV1().Deployments(ns).Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v, want 409", err)
	}
	// Status is written only through /status.
	d.Status.Replicas = 7
	if d, err = cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil || d.Status.Replicas != 0 {
		t.Fatalf("status through the main resource: %d (%v)", d.Status.Replicas, err)
	}
	d.Status.Replicas = 7
	d.Spec.Replicas = ptr(int32(9))
	if d, err = cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil || d.Status.Replicas != 7 || *d.Spec.Replicas != 3 {
		t.Fatalf("status update: status %d spec %d (%v)", d.Status.Replicas, *d.Spec.Replicas, err)
	}
	// Scale subresource.
	sc, err := cs.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 3 {
		t.Fatalf("get scale: %+v %v", sc, err)
	}
	sc.Spec.Replicas = 4
	if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{ObjectMeta: sc.ObjectMeta, Spec: sc.Spec}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if d, _ = cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); *d.Spec.Replicas != 4 {
		t.Fatalf("replicas after scale: %d", *d.Spec.Replicas)
	}
	// Selector is immutable.
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
	d.Spec.Template.Labels = map[string]string{"app": "other"}
	if _, err := cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.selector") {
		t.Fatalf("selector change: %v, want 422 on spec.selector", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestFinalizersAndGracefulDeletion(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err = cs.CoreV1().ConfigMaps(ns).Get(ctx, "held", metav1.GetOptions{})
	if err != nil || cm.DeletionTimestamp == nil {
		t.Fatalf("object with a finalizer after delete: %v %v", cm, err)
	}
	cm.Finalizers = nil
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("object still there after its last finalizer went: %v", err)
	}

	pod := func(name, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	}
	p, err := cs.CoreV1().Pods(ns).Create(ctx, pod("unbound", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.SchedulerName != "default-scheduler" || p.Spec.DNSPolicy != corev1.DNSClusterFirst || *p.Spec.TerminationGracePeriodSeconds != 30 ||
		p.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways || p.Status.Phase != corev1.PodPending || p.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("pod defaults: spec %+v status %+v", p.Spec, p.Status)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "unbound", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, "unbound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unbound pod not deleted at once: %v", err)
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("bound", "node-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "bound", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = cs.CoreV1().Pods(ns).Get(ctx, "bound", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("bound pod after delete: %v %v", p, err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "bound", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, "bound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("bound pod after gracePeriodSeconds=0: %v", err)
	}
}

func TestNamespaceLifecycle(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	if _, err := cs.CoreV1().ConfigMaps("no-such-namespace").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in a missing namespace: %v, want 404", err)
	}
	ns := namespace(t, cs)
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil || got.Status.Phase != corev1.NamespaceTerminating || got.DeletionTimestamp == nil {
		t.Fatalf("deleted namespace: %+v %v", got, err)
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("create in a terminating namespace: %v, want 403", err)
	}
}

func TestDryRunPersistsNothing(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	dry := []string{metav1.DryRunAll}
	out, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: dry})
	if err != nil || out.Name != "dry" {
		t.Fatalf("dry-run create: %v %v", out, err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run create persisted: %v", err)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "real"}, Data: map[string]string{"a": "1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["a"] = "2"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{DryRun: dry}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, "real", types.MergePatchType, []byte(`{"data":{"a":"3"}}`), metav1.PatchOptions{DryRun: dry}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "real", metav1.DeleteOptions{DryRun: dry}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "real", metav1.GetOptions{})
	if err != nil || got.Data["a"] != "1" || got.ResourceVersion != cm.ResourceVersion {
		t.Fatalf("after dry-run update, patch and delete: %v %v", got, err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dry-svc"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	for i := 0; i < 2; i++ {
		if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{DryRun: dry}); err != nil {
			t.Fatalf("dry-run service create %d: %v", i, err)
		}
	}
}

func TestServiceAllocation(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	_, cidr, _ := net.ParseCIDR("10.43.0.0/16")
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{GenerateName: "s-"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ip := svc.Spec.ClusterIP
		if !cidr.Contains(net.ParseIP(ip)) || seen[ip] || ip == "10.43.0.1" {
			t.Fatalf("clusterIP %q: outside the range, reused or the kubernetes Service's", ip)
		}
		seen[ip] = true
		if svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP || svc.Spec.Ports[0].TargetPort != intstr.FromInt32(80) || svc.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("service defaults: %+v", svc.Spec)
		}
	}
	var taken string
	for ip := range seen {
		taken = ip
	}
	_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dup"},
		Spec: corev1.ServiceSpec{ClusterIP: taken, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "already allocated") {
		t.Fatalf("duplicate clusterIP: %v, want 422 already allocated", err)
	}
	np, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "np"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := np.Spec.Ports[0].NodePort; p < 30000 || p > 32767 {
		t.Fatalf("nodePort %d outside 30000-32767", p)
	}
	// A PUT without clusterIP keeps the allocated one.
	np.Spec.ClusterIP, np.Spec.ClusterIPs = "", nil
	np.Spec.Ports[0].NodePort = 0
	upd, err := cs.CoreV1().Services(ns).Update(ctx, np, metav1.UpdateOptions{})
	if err != nil || upd.Spec.ClusterIP == "" || upd.Spec.Ports[0].NodePort == 0 {
		t.Fatalf("update without allocated values: %v %v", upd, err)
	}
}

func TestBindingAndEviction(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	labels := map[string]string{"app": "guarded"}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := cs.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{})
	if got.Spec.NodeName != "node-1" {
		t.Fatalf("after binding nodeName = %q", got.Spec.NodeName)
	}
	err = cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-2"}}, metav1.CreateOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("binding a bound pod: %v, want 409", err)
	}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "guard"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr(intstr.FromInt32(0)), Selector: &metav1.LabelSelector{MatchLabels: labels}}}
	if _, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = cs.CoreV1().Pods(ns).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "p"}})
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("eviction blocked by a PDB: %v, want 429", err)
	}
}

func TestServerSideApplyWithClientGo(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	ac := corev1ac.ConfigMap("ssa", ns).WithData(map[string]string{"k": "one"})
	cm, err := cs.CoreV1().ConfigMaps(ns).Apply(ctx, ac, metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil || cm.Data["k"] != "one" {
		t.Fatalf("first apply: %v %v", cm, err)
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Apply(ctx, corev1ac.ConfigMap("ssa", ns).WithData(map[string]string{"k": "two"}), metav1.ApplyOptions{FieldManager: "bob"})
	if !apierrors.IsConflict(err) {
		t.Fatalf("conflicting apply: %v, want 409", err)
	}
	cm, err = cs.CoreV1().ConfigMaps(ns).Apply(ctx, corev1ac.ConfigMap("ssa", ns).WithData(map[string]string{"k": "two"}), metav1.ApplyOptions{FieldManager: "bob", Force: true})
	if err != nil || cm.Data["k"] != "two" {
		t.Fatalf("forced apply: %v %v", cm, err)
	}
}

func TestProtobufAndTables(t *testing.T) {
	cfg := rest.CopyConfig(srv.RESTConfig())
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
	pcs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, srv.Client())
	if _, err := pcs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pb"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("protobuf create: %v", err)
	}
	list, err := pcs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("protobuf list: %v %v", list, err)
	}
	c := rawClient(t)
	req, _ := http.NewRequest("GET", srv.URL()+"/api/v1/namespaces/"+ns+"/pods", nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var table metav1.Table
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &table); err != nil || table.Kind != "Table" {
		t.Fatalf("table: %v %s", err, trim(body))
	}
	var names []string
	for _, col := range table.ColumnDefinitions {
		names = append(names, col.Name)
	}
	if strings.Join(names, ",") != "Name,Ready,Status,Restarts,Age,IP,Node,Nominated Node,Readiness Gates" {
		t.Errorf("pod columns: %v", names)
	}
	if len(table.Rows) != 1 || table.Rows[0].Cells[0] != "pb" || table.Rows[0].Cells[1] != "0/1" || table.Rows[0].Cells[2] != "Pending" {
		t.Errorf("pod row: %+v", table.Rows)
	}
}

func TestHealthVersionMetrics(t *testing.T) {
	c := rawClient(t)
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		code, body := do(t, c, "GET", p, "", nil)
		if code != 200 || strings.TrimSpace(string(body)) != "ok" {
			t.Errorf("%s: %d %q", p, code, body)
		}
	}
	code, body := do(t, c, "GET", "/version", "", nil)
	if code != 200 || !strings.Contains(string(body), `"gitVersion"`) {
		t.Errorf("/version: %d %s", code, body)
	}
	code, body = do(t, c, "GET", "/metrics", "", nil)
	if code != 200 || !strings.Contains(string(body), "apiserver_request_total") {
		t.Errorf("/metrics: %d %s", code, trim(body))
	}
}

func TestPodPriorityAdmission(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	if _, err := cs.SchedulingV1().PriorityClasses().Get(ctx, "system-node-critical", metav1.GetOptions{}); err != nil {
		t.Fatalf("system priority class missing: %v", err)
	}
	never := corev1.PreemptNever
	if _, err := cs.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "e2e-high"}, Value: 1000, PreemptionPolicy: &never}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mk := func(name, class string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{PriorityClassName: class, SchedulerName: "nobody",
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	}
	p, err := cs.CoreV1().Pods(ns).Create(ctx, mk("high", "e2e-high"), metav1.CreateOptions{})
	if err != nil || p.Spec.Priority == nil || *p.Spec.Priority != 1000 || *p.Spec.PreemptionPolicy != corev1.PreemptNever {
		t.Fatalf("pod with a priority class: %v %v", p.Spec.Priority, err)
	}
	p, err = cs.CoreV1().Pods(ns).Create(ctx, mk("plain", ""), metav1.CreateOptions{})
	if err != nil || p.Spec.Priority == nil || *p.Spec.Priority != 0 {
		t.Fatalf("pod without a class: %v %v", p.Spec.Priority, err)
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, mk("unknown", "no-such-class"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("unknown priority class: %v, want 403", err)
	}
}
