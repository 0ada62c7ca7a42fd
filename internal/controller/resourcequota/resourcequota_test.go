package resourcequota

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/metadata/metadatainformer"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/quota"
)

var now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

type podB struct{ p *corev1.Pod }

func mkPod(name string) podB {
	return podB{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}}
}
func (b podB) container(req, lim corev1.ResourceList) podB {
	b.p.Spec.Containers = append(b.p.Spec.Containers, corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}})
	return b
}
func (b podB) init(req corev1.ResourceList, sidecar bool) podB {
	c := corev1.Container{Name: "i", Resources: corev1.ResourceRequirements{Requests: req}}
	if sidecar {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	b.p.Spec.InitContainers = append(b.p.Spec.InitContainers, c)
	return b
}
func (b podB) phase(ph corev1.PodPhase) podB { b.p.Status.Phase = ph; return b }
func (b podB) deadline(s int64) podB         { b.p.Spec.ActiveDeadlineSeconds = &s; return b }
func (b podB) priority(c string) podB        { b.p.Spec.PriorityClassName = c; return b }
func (b podB) deleting(at time.Time, grace int64) podB {
	t := metav1.NewTime(at)
	b.p.DeletionTimestamp, b.p.DeletionGracePeriodSeconds = &t, &grace
	return b
}
func (b podB) obj() *corev1.Pod { return b.p }

func TestPodAmount(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		res  corev1.ResourceName
		lim  bool
		want string
	}{
		{"sum of containers", mkPod("a").container(rl("cpu", "100m"), nil).container(rl("cpu", "250m"), nil).obj(), "cpu", false, "350m"},
		{"init peak wins", mkPod("a").init(rl("memory", "1Gi"), false).container(rl("memory", "100Mi"), nil).obj(), "memory", false, "1Gi"},
		{"sidecar adds", mkPod("a").init(rl("cpu", "100m"), true).container(rl("cpu", "200m"), nil).obj(), "cpu", false, "300m"},
		{"limits", mkPod("a").container(nil, rl("cpu", "1")).container(nil, rl("cpu", "2")).obj(), "cpu", true, "3"},
		{"unset is zero", mkPod("a").container(nil, nil).obj(), "cpu", false, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := quota.PodAmount(tt.pod, tt.res, tt.lim)
			if want := resource.MustParse(tt.want); got.Cmp(want) != 0 {
				t.Fatalf("got %s, want %s", got.String(), tt.want)
			}
		})
	}
}

func TestCountedResource(t *testing.T) {
	for in, want := range map[string]schema.GroupResource{
		"configmaps":                {Resource: "configmaps"},
		"count/pods":                {Resource: "pods"},
		"count/deployments.apps":    {Group: "apps", Resource: "deployments"},
		"count/widgets.example.com": {Group: "example.com", Resource: "widgets"},
	} {
		got, ok := quota.CountedResource(corev1.ResourceName(in))
		if !ok || got != want {
			t.Errorf("%s: got %v %v, want %v", in, got, ok, want)
		}
	}
	if _, ok := quota.CountedResource("requests.cpu"); ok {
		t.Error("requests.cpu is not a count")
	}
}

func TestCalculate(t *testing.T) {
	storage := "fast"
	objs := []runtime.Object{
		mkPod("web").container(rl("cpu", "500m", "memory", "128Mi"), rl("cpu", "1", "memory", "256Mi")).obj(),
		mkPod("batch").container(rl("cpu", "250m"), rl("cpu", "250m")).deadline(60).priority("high").obj(),
		mkPod("best-effort").container(nil, nil).obj(),
		mkPod("done").container(rl("cpu", "4"), nil).phase(corev1.PodSucceeded).obj(),
		mkPod("stuck").container(rl("cpu", "4"), nil).deleting(now.Add(-time.Hour), 30).obj(),
		mkPod("leaving").container(rl("cpu", "1"), nil).deleting(now.Add(10*time.Second), 30).obj(),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb", Namespace: "ns"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080}, {Port: 443, NodePort: 30443}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "np", Namespace: "ns"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 30081}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ip", Namespace: "ns"}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &storage, Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "1Gi")}}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"}, Spec: corev1.PersistentVolumeClaimSpec{
			Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "2Gi")}}},
		mkPod("elsewhere").container(rl("cpu", "8"), nil).obj(),
	}
	objs[len(objs)-1].(*corev1.Pod).Namespace = "other"
	cms := []runtime.Object{cmMeta("ns", "a"), cmMeta("ns", "b"), cmMeta("other", "c")}

	tests := []struct {
		name    string
		quota   *corev1.ResourceQuota
		want    corev1.ResourceList
		recheck bool
	}{
		{
			name: "compute resources and counts",
			quota: testQuota(rl("pods", "10", "count/pods", "10", "requests.cpu", "10", "cpu", "10", "limits.cpu", "10",
				"requests.memory", "1Gi", "limits.memory", "1Gi", "configmaps", "5", "count/configmaps", "5")),
			want: rl("pods", "4", "count/pods", "4", "requests.cpu", "1750m", "cpu", "1750m", "limits.cpu", "1250m",
				"requests.memory", "128Mi", "limits.memory", "256Mi", "configmaps", "2", "count/configmaps", "2"),
			recheck: true,
		},
		{
			name: "services and claims",
			quota: testQuota(rl("services", "9", "services.loadbalancers", "9", "services.nodeports", "9", "persistentvolumeclaims", "9",
				"requests.storage", "10Gi", "fast.storageclass.storage.k8s.io/requests.storage", "5Gi",
				"fast.storageclass.storage.k8s.io/persistentvolumeclaims", "5", "count/resourcequotas", "5")),
			want: rl("services", "3", "services.loadbalancers", "1", "services.nodeports", "3", "persistentvolumeclaims", "2",
				"requests.storage", "3Gi", "fast.storageclass.storage.k8s.io/requests.storage", "1Gi",
				"fast.storageclass.storage.k8s.io/persistentvolumeclaims", "1", "count/resourcequotas", "1"),
		},
		{
			name:    "terminating scope",
			quota:   scoped(testQuota(rl("pods", "10", "requests.cpu", "10")), corev1.ResourceQuotaScopeTerminating),
			want:    rl("pods", "1", "requests.cpu", "250m"),
			recheck: true,
		},
		{
			name:    "best effort scope",
			quota:   scoped(testQuota(rl("pods", "10")), corev1.ResourceQuotaScopeBestEffort),
			want:    rl("pods", "1"),
			recheck: true,
		},
		{
			name: "priority class selector",
			quota: func() *corev1.ResourceQuota {
				q := testQuota(rl("pods", "10"))
				q.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
					{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"high"}}}}
				return q
			}(),
			want:    rl("pods", "1"),
			recheck: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := newTest(t, ctx, append(append([]runtime.Object(nil), objs...), tt.quota), cms)
			used, recheck, err := c.calculate(ctx, tt.quota)
			if err != nil {
				t.Fatal(err)
			}
			if !quantitiesEqual(used, tt.want) {
				t.Errorf("used %v\nwant %v", fmtList(used), fmtList(tt.want))
			}
			if (recheck > 0) != tt.recheck {
				t.Errorf("recheck %v, want one: %v", recheck, tt.recheck)
			}
		})
	}
}

func TestSyncWritesStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := testQuota(rl("pods", "3", "configmaps", "3"))
	c := newTest(t, ctx, []runtime.Object{q, mkPod("a").obj()}, []runtime.Object{cmMeta("ns", "x")})
	if err := c.sync(ctx, "ns/q"); err != nil {
		t.Fatal(err)
	}
	got, err := c.client.CoreV1().ResourceQuotas("ns").Get(ctx, "q", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !quantitiesEqual(got.Status.Hard, q.Spec.Hard) {
		t.Errorf("status.hard %v, want %v", fmtList(got.Status.Hard), fmtList(q.Spec.Hard))
	}
	if want := rl("pods", "1", "configmaps", "1"); !quantitiesEqual(got.Status.Used, want) {
		t.Errorf("status.used %v, want %v", fmtList(got.Status.Used), fmtList(want))
	}
	// Unchanged usage: no second write.
	n := len(c.client.(*fake.Clientset).Actions())
	c.informers.Core().V1().ResourceQuotas().Informer().GetIndexer().Update(got)
	if err := c.sync(ctx, "ns/q"); err != nil {
		t.Fatal(err)
	}
	if m := len(c.client.(*fake.Clientset).Actions()); m != n {
		t.Errorf("%d more API calls for an unchanged quota", m-n)
	}
}

// testController is a Controller with its informers, caches filled.
type testController struct {
	*Controller
	informers informers.SharedInformerFactory
}

func newTest(t *testing.T, ctx context.Context, objs, metaObjs []runtime.Object) testController {
	t.Helper()
	cs := fake.NewClientset(objs...)
	inf := informers.NewSharedInformerFactory(cs, 0)
	sch := metadatafake.NewTestScheme()
	sch.AddKnownTypeWithName(corev1.SchemeGroupVersion.WithKind("ConfigMap"), &metav1.PartialObjectMetadata{})
	sch.AddKnownTypeWithName(corev1.SchemeGroupVersion.WithKind("ConfigMapList"), &metav1.PartialObjectMetadataList{})
	mc := metadatafake.NewSimpleMetadataClient(sch, metaObjs...)
	c, err := New(&controller.Context{Client: cs, Informers: inf, MetadataInformers: metadatainformer.NewSharedInformerFactory(mc, 0),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.queue.ShutDown)
	c.now = func() time.Time { return now }
	c.stop = ctx.Done()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Pod:
			err = inf.Core().V1().Pods().Informer().GetIndexer().Add(o)
		case *corev1.Service:
			err = inf.Core().V1().Services().Informer().GetIndexer().Add(o)
		case *corev1.PersistentVolumeClaim:
			err = inf.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(o)
		case *corev1.ResourceQuota:
			err = inf.Core().V1().ResourceQuotas().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return testController{c, inf}
}

func cmMeta(ns, name string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func testQuota(hard corev1.ResourceList) *corev1.ResourceQuota {
	return &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}
}

func scoped(q *corev1.ResourceQuota, s corev1.ResourceQuotaScope) *corev1.ResourceQuota {
	q.Spec.Scopes = append(q.Spec.Scopes, s)
	return q
}

func fmtList(l corev1.ResourceList) map[corev1.ResourceName]string {
	out := map[corev1.ResourceName]string{}
	for k, v := range l {
		out[k] = v.String()
	}
	return out
}

// TestCreatesOnlyRaiseUsage: a create was charged by admission already, so
// the recount its add event queues may raise usage (an object stored
// before admission saw the quota) but never lower it: caches lagging the
// charges once let 7 of 20 concurrent creates through a quota with room
// for 5. A delete (or the resync) recounts in full.
func TestCreatesOnlyRaiseUsage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := testQuota(rl("pods", "5", "configmaps", "5"))
	q.Status = corev1.ResourceQuotaStatus{Hard: rl("pods", "5", "configmaps", "5"), Used: rl("pods", "3", "configmaps", "0")}
	a := mkPod("a").obj()
	c := newTest(t, ctx, []runtime.Object{q, a}, []runtime.Object{cmMeta("ns", "x")})
	syncUsed := func(what string, want corev1.ResourceList) {
		t.Helper()
		if err := c.sync(ctx, "ns/q"); err != nil {
			t.Fatal(err)
		}
		got, err := c.client.CoreV1().ResourceQuotas("ns").Get(ctx, "q", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !quantitiesEqual(got.Status.Used, want) {
			t.Errorf("%s: status.used %v, want %v", what, fmtList(got.Status.Used), fmtList(want))
		}
		if err := c.informers.Core().V1().ResourceQuotas().Informer().GetIndexer().Update(got); err != nil {
			t.Fatal(err)
		}
	}
	// Two pods charged but not in the cache yet; a configmap the quota
	// has not counted (stored before admission saw the quota).
	c.growNamespaceOf(a)
	syncUsed("after an add", rl("pods", "3", "configmaps", "1"))
	c.enqueueNamespaceOf(a) // as a delete does
	syncUsed("after a delete", rl("pods", "1", "configmaps", "1"))
	// The release is used up: the next add-queued sync keeps charges.
	q2, err := c.client.CoreV1().ResourceQuotas("ns").Get(ctx, "q", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q2.Status.Used = rl("pods", "2", "configmaps", "1")
	if _, err := c.client.CoreV1().ResourceQuotas("ns").UpdateStatus(ctx, q2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.informers.Core().V1().ResourceQuotas().Informer().GetIndexer().Update(q2); err != nil {
		t.Fatal(err)
	}
	c.growNamespaceOf(a)
	syncUsed("after a second add", rl("pods", "2", "configmaps", "1"))
	// A recount allowed only after a pod's grace period does not release
	// before then.
	c.allowRelease("ns/q", now.Add(time.Minute))
	syncUsed("before the grace period ends", rl("pods", "2", "configmaps", "1"))
	c.now = func() time.Time { return now.Add(2 * time.Minute) }
	syncUsed("after it", rl("pods", "1", "configmaps", "1"))
}
