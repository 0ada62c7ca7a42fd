package endpointslice

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

const ns = "ns"

func makeSvc(mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, UID: "svc-uid", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{
			Selector:   map[string]string{"app": "web"},
			ClusterIP:  "10.96.0.10",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func makePod(name, ip string, ready bool, mutate ...func(*corev1.Pod)) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID(name + "-uid"), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.Now()}}},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func terminating(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }

type harness struct {
	c      *Controller
	client *fake.Clientset
	inf    informers.SharedInformerFactory
}

func newHarness(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	client := fake.NewClientset()
	var n atomic.Int64
	// The fake tracker neither generates names nor keeps generations.
	client.PrependReactor("create", "endpointslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s := a.(k8stesting.CreateAction).GetObject().(*discoveryv1.EndpointSlice)
		if s.Name == "" {
			i := n.Add(1)
			s.Name = fmt.Sprintf("%s%05d", s.GenerateName, i)
			s.UID = types.UID(fmt.Sprintf("slice-uid-%d", i))
		}
		s.Generation = 1
		return false, nil, nil
	})
	client.PrependReactor("update", "endpointslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		a.(k8stesting.UpdateAction).GetObject().(*discoveryv1.EndpointSlice).Generation++
		return false, nil, nil
	})
	inf := informers.NewSharedInformerFactory(client, 0)
	cc := &controller.Context{Client: client, Informers: inf, Broadcaster: record.NewBroadcaster(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c, err := New(cc)
	if err != nil {
		t.Fatal(err)
	}
	c.recorder = record.NewFakeRecorder(100)
	h := &harness{c: c, client: client, inf: inf}
	h.add(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}}})
	for _, o := range objs {
		h.add(t, o)
	}
	return h
}

func (h *harness) add(t *testing.T, o runtime.Object) {
	t.Helper()
	var err error
	switch o := o.(type) {
	case *corev1.Service:
		err = h.inf.Core().V1().Services().Informer().GetIndexer().Add(o)
	case *corev1.Pod:
		err = h.inf.Core().V1().Pods().Informer().GetIndexer().Add(o)
	case *corev1.Node:
		err = h.inf.Core().V1().Nodes().Informer().GetIndexer().Add(o)
	case *discoveryv1.EndpointSlice:
		if err = h.inf.Discovery().V1().EndpointSlices().Informer().GetIndexer().Add(o); err == nil {
			_, err = h.client.DiscoveryV1().EndpointSlices(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (h *harness) del(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if err := h.inf.Core().V1().Pods().Informer().GetIndexer().Delete(p); err != nil {
		t.Fatal(err)
	}
}

// slices lists the slices in the fake API, and mirrors them into the cache
// as an informer would.
func (h *harness) slices(t *testing.T) []discoveryv1.EndpointSlice {
	t.Helper()
	l, err := h.client.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	idx := h.inf.Discovery().V1().EndpointSlices().Informer().GetIndexer()
	for _, o := range idx.List() {
		idx.Delete(o)
	}
	for i := range l.Items {
		idx.Add(&l.Items[i])
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items
}

func (h *harness) sync(t *testing.T) {
	t.Helper()
	if err := h.c.sync(context.Background(), ns+"/web"); err != nil {
		t.Fatal(err)
	}
}

func verbs(h *harness) map[string]int {
	out := map[string]int{}
	for _, a := range h.client.Actions() {
		if a.GetResource().Resource == "endpointslices" {
			out[a.GetVerb()]++
		}
	}
	return out
}

type cond struct{ ready, serving, terminating bool }

func TestEndpoints(t *testing.T) {
	host := func(p *corev1.Pod) { p.Spec.Hostname = "h0"; p.Spec.Subdomain = "web" }
	tests := []struct {
		name string
		svc  *corev1.Service
		pods []*corev1.Pod
		want map[string]cond // pod name → conditions
	}{
		{"ready, not ready, terminating", makeSvc(), []*corev1.Pod{
			makePod("a", "10.0.0.1", true, host), makePod("b", "10.0.0.2", false), makePod("c", "10.0.0.3", true, terminating),
			makePod("noip", "", true, func(p *corev1.Pod) { p.Status.PodIPs = nil }),
			makePod("done", "10.0.0.9", true, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
		}, map[string]cond{"a": {true, true, false}, "b": {false, false, false}, "c": {false, true, true}}},
		{"publishNotReadyAddresses", makeSvc(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }), []*corev1.Pod{
			makePod("b", "10.0.0.2", false), makePod("c", "10.0.0.3", false, terminating),
		}, map[string]cond{"b": {true, false, false}, "c": {true, false, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.svc)
			for _, p := range tt.pods {
				h.add(t, p)
			}
			h.sync(t)
			ss := h.slices(t)
			if len(ss) != 1 {
				t.Fatalf("%d slices, want 1", len(ss))
			}
			s := ss[0]
			if s.AddressType != discoveryv1.AddressTypeIPv4 || s.GenerateName != "web-" ||
				s.Labels[discoveryv1.LabelServiceName] != "web" || s.Labels[discoveryv1.LabelManagedBy] != ControllerName || s.Labels["team"] != "a" {
				t.Errorf("slice meta %+v", s.ObjectMeta)
			}
			if ref := metav1.GetControllerOf(&s); ref == nil || ref.UID != "svc-uid" || ref.Kind != "Service" {
				t.Errorf("owner %v", s.OwnerReferences)
			}
			if len(s.Ports) != 1 || *s.Ports[0].Name != "http" || *s.Ports[0].Port != 8080 || *s.Ports[0].Protocol != corev1.ProtocolTCP {
				t.Errorf("ports %+v", s.Ports)
			}
			got := map[string]cond{}
			for _, ep := range s.Endpoints {
				c := ep.Conditions
				got[ep.TargetRef.Name] = cond{*c.Ready, *c.Serving, *c.Terminating}
				if ep.NodeName == nil || *ep.NodeName != "n1" || ep.Zone == nil || *ep.Zone != "zone-a" || ep.TargetRef.Kind != "Pod" || ep.TargetRef.UID == "" {
					t.Errorf("endpoint %+v", ep)
				}
				if (ep.Hostname != nil) != (ep.TargetRef.Name == "a") {
					t.Errorf("hostname of %s: %v", ep.TargetRef.Name, ep.Hostname)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("conditions %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNamedPortsAndHeadless(t *testing.T) {
	svc := makeSvc(func(s *corev1.Service) {
		s.Spec.Ports[0].TargetPort = intstr.FromString("web")
		app := "http"
		s.Spec.Ports[0].AppProtocol = &app
	})
	web := func(n int32) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "web", ContainerPort: n, Protocol: corev1.ProtocolTCP}}
		}
	}
	h := newHarness(t, svc, makePod("a", "10.0.0.1", true, web(8080)), makePod("b", "10.0.0.2", true, web(9090)),
		makePod("c", "10.0.0.3", true, web(8080)), makePod("none", "10.0.0.4", true))
	h.sync(t)
	byPort := map[string]int{}
	for _, s := range h.slices(t) {
		k := "none"
		if len(s.Ports) == 1 {
			k = fmt.Sprintf("%d/%s", *s.Ports[0].Port, *s.Ports[0].AppProtocol)
		}
		byPort[k] = len(s.Endpoints)
	}
	if fmt.Sprint(byPort) != "map[8080/http:2 9090/http:1 none:1]" {
		t.Errorf("endpoints per port mapping %v", byPort)
	}

	hl := newHarness(t, makeSvc(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone; s.Spec.Ports = nil }), makePod("a", "10.0.0.1", true))
	hl.sync(t)
	ss := hl.slices(t)
	if len(ss) != 1 || len(ss[0].Ports) != 0 || len(ss[0].Endpoints) != 1 {
		t.Fatalf("headless slices %+v", ss)
	}
	if _, ok := ss[0].Labels[corev1.IsHeadlessService]; !ok {
		t.Errorf("headless label missing: %v", ss[0].Labels)
	}
}

func TestSplittingAndReuse(t *testing.T) {
	h := newHarness(t, makeSvc())
	var pods []*corev1.Pod
	for i := 0; i < 250; i++ {
		p := makePod(fmt.Sprintf("p%03d", i), fmt.Sprintf("10.0.%d.%d", i/200, i%200+1), true)
		pods = append(pods, p)
		h.add(t, p)
	}
	h.sync(t)
	ss := h.slices(t)
	var sizes []int
	for _, s := range ss {
		sizes = append(sizes, len(s.Endpoints))
	}
	sort.Ints(sizes)
	if fmt.Sprint(sizes) != "[50 100 100]" {
		t.Fatalf("slice sizes %v", sizes)
	}

	h.client.ClearActions()
	h.sync(t)
	if v := verbs(h); len(v) != 0 {
		t.Errorf("unchanged sync wrote %v", v)
	}

	// Ten pods go, five become unready: slices are updated in place.
	for _, p := range pods[:10] {
		h.del(t, p)
	}
	for _, p := range pods[100:105] {
		h.add(t, makePod(p.Name, p.Status.PodIP, false))
	}
	h.client.ClearActions()
	h.sync(t)
	if v := verbs(h); v["create"] != 0 || v["delete"] != 0 || v["update"] == 0 {
		t.Errorf("writes %v, want updates only", v)
	}
	total := 0
	names := map[string]bool{}
	for _, s := range h.slices(t) {
		total += len(s.Endpoints)
		names[s.Name] = true
	}
	for _, s := range ss {
		if !names[s.Name] {
			t.Errorf("slice %s was replaced", s.Name)
		}
	}
	if total != 240 {
		t.Errorf("%d endpoints, want 240", total)
	}

	// A cache that lacks our writes is not acted on.
	idx := h.inf.Discovery().V1().EndpointSlices().Informer().GetIndexer()
	for _, o := range idx.List() {
		idx.Delete(o)
	}
	if err := h.c.sync(context.Background(), ns+"/web"); err != errStaleCache {
		t.Errorf("sync on a stale cache: %v", err)
	}
}

func TestPlaceholderAndDeletion(t *testing.T) {
	user := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-user", Namespace: ns,
		Labels: map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "someone-else"}},
		AddressType: discoveryv1.AddressTypeIPv4}

	h := newHarness(t, makeSvc(), user)
	h.sync(t)
	ss := h.slices(t)
	if len(ss) != 2 {
		t.Fatalf("want the user's slice and a placeholder, got %d", len(ss))
	}
	h.client.ClearActions()
	h.sync(t)
	if v := verbs(h); len(v) != 0 {
		t.Errorf("placeholder rewritten: %v", v)
	}
	// A pod appears: the placeholder is reused, not replaced.
	h.add(t, makePod("a", "10.0.0.1", true))
	h.client.ClearActions()
	h.sync(t)
	if v := verbs(h); v["create"] != 0 || v["update"] != 1 {
		t.Errorf("writes %v", v)
	}
	h.slices(t)

	// The Service goes: our slices go, the user's stays.
	if err := h.inf.Core().V1().Services().Informer().GetIndexer().Delete(makeSvc()); err != nil {
		t.Fatal(err)
	}
	h.sync(t)
	ss = h.slices(t)
	if len(ss) != 1 || ss[0].Name != "web-user" {
		t.Errorf("after service deletion: %v", ss)
	}
}

func TestSelectorlessAndMissingNode(t *testing.T) {
	user := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-user", Namespace: ns,
		Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}, AddressType: discoveryv1.AddressTypeIPv4}
	h := newHarness(t, makeSvc(func(s *corev1.Service) { s.Spec.Selector = nil }), user, makePod("a", "10.0.0.1", true))
	h.client.ClearActions()
	h.sync(t)
	if v := verbs(h); len(v) != 0 {
		t.Errorf("selector-less service: writes %v", v)
	}

	h = newHarness(t, makeSvc(), makePod("a", "10.0.0.1", true), makePod("lost", "10.0.0.2", true, func(p *corev1.Pod) { p.Spec.NodeName = "gone" }))
	if err := h.c.sync(context.Background(), ns+"/web"); err == nil {
		t.Error("pod on a missing node: want an error to retry")
	}
	ss := h.slices(t)
	if len(ss) != 1 || len(ss[0].Endpoints) != 1 || ss[0].Endpoints[0].TargetRef.Name != "a" {
		t.Errorf("slices %+v", ss)
	}
}
