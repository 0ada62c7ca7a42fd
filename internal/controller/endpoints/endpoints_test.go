package endpoints

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

func namedPort(name string, port int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP})
	}
}

func addr(p *corev1.Pod, hostname ...string) corev1.EndpointAddress {
	n := p.Spec.NodeName
	a := corev1.EndpointAddress{IP: p.Status.PodIP, NodeName: &n,
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}}
	if len(hostname) > 0 {
		a.Hostname = hostname[0]
	}
	return a
}

func port(name string, n int32) corev1.EndpointPort {
	return corev1.EndpointPort{Name: name, Port: n, Protocol: corev1.ProtocolTCP}
}

type harness struct {
	c      *Controller
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	events *record.FakeRecorder
}

func newHarness(t *testing.T, objs ...any) *harness {
	t.Helper()
	client := fake.NewClientset()
	inf := informers.NewSharedInformerFactory(client, 0)
	cc := &controller.Context{Client: client, Informers: inf, Broadcaster: record.NewBroadcaster(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c, err := New(cc)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{c: c, client: client, inf: inf, events: record.NewFakeRecorder(10)}
	c.recorder = h.events
	for _, o := range objs {
		h.add(t, o)
	}
	return h
}

func (h *harness) add(t *testing.T, o any) {
	t.Helper()
	var err error
	switch o := o.(type) {
	case *corev1.Service:
		err = h.inf.Core().V1().Services().Informer().GetIndexer().Add(o)
	case *corev1.Pod:
		err = h.inf.Core().V1().Pods().Informer().GetIndexer().Add(o)
	case *corev1.Endpoints:
		err = h.inf.Core().V1().Endpoints().Informer().GetIndexer().Add(o)
		if err == nil {
			_, err = h.client.CoreV1().Endpoints(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (h *harness) get(t *testing.T) *corev1.Endpoints {
	t.Helper()
	ep, err := h.client.CoreV1().Endpoints(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func TestSubsets(t *testing.T) {
	a := makePod("a", "10.0.0.1", true)
	b := makePod("b", "10.0.0.2", false)
	term := makePod("t", "10.0.0.3", true, terminating)
	noIP := makePod("noip", "", true, func(p *corev1.Pod) { p.Status.PodIPs = nil })
	done := makePod("done", "10.0.0.4", false, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })
	other := makePod("other", "10.0.0.5", true, func(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} })
	webA := makePod("wa", "10.0.1.1", true, namedPort("web", 8080), namedPort("metrics", 9100))
	webB := makePod("wb", "10.0.1.2", true, namedPort("web", 9090))
	noWeb := makePod("nw", "10.0.1.3", true)
	named := func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")},
			{Name: "metrics", Port: 9100, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("metrics")},
		}
	}
	headless := func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone; s.Spec.Ports = nil }
	host := makePod("h", "10.0.2.1", true, func(p *corev1.Pod) { p.Spec.Hostname = "h0"; p.Spec.Subdomain = "web" })
	hostOther := makePod("h2", "10.0.2.2", true, func(p *corev1.Pod) { p.Spec.Hostname = "h1"; p.Spec.Subdomain = "nope" })

	tests := []struct {
		name string
		svc  *corev1.Service
		pods []*corev1.Pod
		want []corev1.EndpointSubset
	}{
		{"ready and not ready", makeSvc(), []*corev1.Pod{a, b, other},
			[]corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a)}, NotReadyAddresses: []corev1.EndpointAddress{addr(b)}, Ports: []corev1.EndpointPort{port("http", 8080)}}}},
		{"terminating, IP-less and finished pods left out", makeSvc(), []*corev1.Pod{a, term, noIP, done},
			[]corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a)}, Ports: []corev1.EndpointPort{port("http", 8080)}}}},
		{"publishNotReadyAddresses lists all as ready", makeSvc(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }), []*corev1.Pod{a, b, term},
			[]corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a), addr(b), addr(term)}, Ports: []corev1.EndpointPort{port("http", 8080)}}}},
		{"named ports group pods by what they offer", makeSvc(named), []*corev1.Pod{webA, webB, noWeb},
			[]corev1.EndpointSubset{
				{Addresses: []corev1.EndpointAddress{addr(webA)}, Ports: []corev1.EndpointPort{port("http", 8080), port("metrics", 9100)}},
				{Addresses: []corev1.EndpointAddress{addr(webB)}, Ports: []corev1.EndpointPort{port("http", 9090)}},
			}},
		{"headless without ports", makeSvc(headless), []*corev1.Pod{a, b},
			[]corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a)}, NotReadyAddresses: []corev1.EndpointAddress{addr(b)}}}},
		{"hostname only for the Service's subdomain", makeSvc(), []*corev1.Pod{host, hostOther},
			[]corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(host, "h0"), addr(hostOther)}, Ports: []corev1.EndpointPort{port("http", 8080)}}}},
		{"no pods", makeSvc(), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.svc)
			for _, p := range tt.pods {
				h.add(t, p)
			}
			if err := h.c.sync(context.Background(), ns+"/web"); err != nil {
				t.Fatal(err)
			}
			ep := h.get(t)
			if !apiequality.Semantic.DeepEqual(ep.Subsets, tt.want) {
				t.Errorf("subsets:\n got %+v\nwant %+v", ep.Subsets, tt.want)
			}
			_, isHeadless := ep.Labels[corev1.IsHeadlessService]
			if isHeadless != (tt.svc.Spec.ClusterIP == corev1.ClusterIPNone) || ep.Labels["team"] != "a" {
				t.Errorf("labels %v", ep.Labels)
			}
		})
	}
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	key := ns + "/web"

	t.Run("writes only on change", func(t *testing.T) {
		h := newHarness(t, makeSvc(), makePod("a", "10.0.0.1", true))
		if err := h.c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
		ep := h.get(t)
		if ep.Annotations[corev1.EndpointsLastChangeTriggerTime] == "" {
			t.Errorf("no trigger-time annotation: %v", ep.Annotations)
		}
		ep.ResourceVersion = "1"
		h.inf.Core().V1().Endpoints().Informer().GetIndexer().Add(ep)
		h.client.ClearActions()
		if err := h.c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
		if acts := h.client.Actions(); len(acts) != 0 {
			t.Errorf("unchanged sync wrote: %v", acts)
		}
		// Readiness flips: one update.
		h.add(t, makePod("a", "10.0.0.1", false))
		if err := h.c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
		if acts := h.client.Actions(); len(acts) != 1 || acts[0].GetVerb() != "update" {
			t.Errorf("actions %v", acts)
		}
		if got := h.get(t).Subsets; len(got) != 1 || len(got[0].NotReadyAddresses) != 1 {
			t.Errorf("subsets %+v", got)
		}
	})

	t.Run("service deleted", func(t *testing.T) {
		h := newHarness(t, &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, ResourceVersion: "5"}})
		if err := h.c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("endpoints survived their service: %v", err)
		}
	})

	t.Run("selector-less service left alone", func(t *testing.T) {
		user := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, ResourceVersion: "5"},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}}}}}
		h := newHarness(t, makeSvc(func(s *corev1.Service) { s.Spec.Selector = nil }), user, makePod("a", "10.0.0.1", true))
		h.client.ClearActions()
		if err := h.c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
		if acts := h.client.Actions(); len(acts) != 0 {
			t.Errorf("touched user endpoints: %v", acts)
		}
	})

	t.Run("over capacity truncates", func(t *testing.T) {
		h := newHarness(t, makeSvc())
		for i := 0; i < MaxCapacity+5; i++ {
			h.add(t, makePod(fmt.Sprintf("p%d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), i%2 == 0))
		}
		if err := h.c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
		ep := h.get(t)
		n, ready := 0, 0
		for _, ss := range ep.Subsets {
			n += len(ss.Addresses) + len(ss.NotReadyAddresses)
			ready += len(ss.Addresses)
		}
		if n != MaxCapacity || ready != (MaxCapacity+5+1)/2 || ep.Annotations[corev1.EndpointsOverCapacity] != "truncated" {
			t.Errorf("%d addresses (%d ready), annotations %v", n, ready, ep.Annotations)
		}
		ep.ResourceVersion = "1"
		h.inf.Core().V1().Endpoints().Informer().GetIndexer().Add(ep)
		h.client.ClearActions()
		if err := h.c.sync(ctx, key); err != nil {
			t.Fatal(err)
		}
		if acts := h.client.Actions(); len(acts) != 0 {
			t.Errorf("truncated endpoints rewritten: %v", acts)
		}
	})

	t.Run("update failure records an event and requeues", func(t *testing.T) {
		h := newHarness(t, makeSvc(), makePod("a", "10.0.0.1", true))
		h.client.PrependReactor("create", "endpoints", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewInternalError(fmt.Errorf("boom"))
		})
		if err := h.c.sync(ctx, key); err == nil {
			t.Fatal("want error")
		}
		select {
		case e := <-h.events.Events:
			if want := "Warning FailedToCreateEndpoint"; len(e) < len(want) || e[:len(want)] != want {
				t.Errorf("event %q", e)
			}
		case <-time.After(time.Second):
			t.Error("no event")
		}
	})
}
