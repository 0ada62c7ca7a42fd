package servicelb

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

func makeNode(name, ip string, ready bool) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}},
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}},
	}}
}

func makeSvc(name string, typ corev1.ServiceType, mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: corev1.ServiceSpec{Type: typ, ClusterIP: "10.43.0.50", Ports: []corev1.ServicePort{{Port: 80}}}}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func ips(ing []corev1.LoadBalancerIngress) string {
	var out []string
	for _, i := range ing {
		if i.IPMode == nil || *i.IPMode != corev1.LoadBalancerIPModeVIP {
			out = append(out, i.IP+"(no VIP mode)")
			continue
		}
		out = append(out, i.IP)
	}
	return strings.Join(out, ",")
}

func TestNodeIngress(t *testing.T) {
	deleting := makeNode("d", "10.0.0.9", true)
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	tests := []struct {
		name  string
		nodes []*corev1.Node
		want  string
	}{
		{"no nodes", nil, ""},
		{"ready nodes sorted by address", []*corev1.Node{makeNode("b", "10.0.0.10", true), makeNode("a", "10.0.0.9", true), makeNode("c", "9.0.0.1", true)}, "9.0.0.1,10.0.0.9,10.0.0.10"},
		{"not ready and deleting nodes left out", []*corev1.Node{makeNode("a", "10.0.0.1", true), makeNode("b", "10.0.0.2", false), deleting}, "10.0.0.1"},
		{"shared addresses once", []*corev1.Node{makeNode("a", "10.0.0.1", true), makeNode("b", "10.0.0.1", true)}, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ips(NodeIngress(tt.nodes)); got != tt.want {
				t.Errorf("ingress %q, want %q", got, tt.want)
			}
		})
	}
}

type harness struct {
	c      *Controller
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	events *record.FakeRecorder
}

func newHarness(t *testing.T, pool string) *harness {
	t.Helper()
	client := fake.NewClientset()
	inf := informers.NewSharedInformerFactory(client, 0)
	cc := &controller.Context{Client: client, Informers: inf, Broadcaster: record.NewBroadcaster(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if pool != "" {
		_, cc.Options.ServiceLBPool, _ = net.ParseCIDR(pool)
	}
	c, err := New(cc)
	if err != nil {
		t.Fatal(err)
	}
	ev := record.NewFakeRecorder(100)
	c.recorder = ev
	return &harness{c: c, client: client, inf: inf, events: ev}
}

// put stores s in the fake API and the informer cache, as the API would.
func (h *harness) put(t *testing.T, s *corev1.Service) {
	t.Helper()
	ctx := context.Background()
	if _, err := h.client.CoreV1().Services(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{}); err != nil {
		_, err = h.client.CoreV1().Services(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	} else if _, err := h.client.CoreV1().Services(s.Namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.inf.Core().V1().Services().Informer().GetIndexer().Update(s); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) node(t *testing.T, n *corev1.Node) {
	t.Helper()
	if err := h.inf.Core().V1().Nodes().Informer().GetIndexer().Update(n); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) del(t *testing.T, name string) {
	t.Helper()
	if err := h.inf.Core().V1().Services().Informer().GetIndexer().Delete(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}); err != nil {
		t.Fatal(err)
	}
	h.client.CoreV1().Services("ns").Delete(context.Background(), name, metav1.DeleteOptions{})
}

// sync runs one sync and returns the ingress the API now holds, and puts
// that status in the cache as the informer would.
func (h *harness) sync(t *testing.T, name string) string {
	t.Helper()
	if err := h.c.sync(context.Background(), "ns/"+name); err != nil {
		t.Fatalf("sync %s: %v", name, err)
	}
	s, err := h.client.CoreV1().Services("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return "gone"
	}
	if err := h.inf.Core().V1().Services().Informer().GetIndexer().Update(s); err != nil {
		t.Fatal(err)
	}
	return ips(s.Status.LoadBalancer.Ingress)
}

func TestSyncNodeAddresses(t *testing.T) {
	h := newHarness(t, "")
	h.node(t, makeNode("n1", "192.168.0.2", true))
	h.node(t, makeNode("n2", "192.168.0.1", true))
	h.node(t, makeNode("n3", "192.168.0.3", false))
	h.put(t, makeSvc("lb", corev1.ServiceTypeLoadBalancer))
	if got := h.sync(t, "lb"); got != "192.168.0.1,192.168.0.2" {
		t.Errorf("ingress %q", got)
	}
	// Nodes come and go.
	h.node(t, makeNode("n3", "192.168.0.3", true))
	if got := h.sync(t, "lb"); got != "192.168.0.1,192.168.0.2,192.168.0.3" {
		t.Errorf("ingress after n3 Ready: %q", got)
	}
	h.inf.Core().V1().Nodes().Informer().GetIndexer().Delete(makeNode("n1", "", true))
	if got := h.sync(t, "lb"); got != "192.168.0.1,192.168.0.3" {
		t.Errorf("ingress after n1 deleted: %q", got)
	}
	// Other types and Services with a class are left alone; a Service that
	// stops being a LoadBalancer loses its ingress.
	h.put(t, makeSvc("cip", corev1.ServiceTypeClusterIP))
	h.put(t, makeSvc("other", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
		class := "example.com/lb"
		s.Spec.LoadBalancerClass = &class
	}))
	if got := h.sync(t, "cip"); got != "" {
		t.Errorf("ClusterIP Service ingress %q", got)
	}
	if got := h.sync(t, "other"); got != "" {
		t.Errorf("Service with a loadBalancerClass got ingress %q", got)
	}
	cur, _ := h.c.services.Services("ns").Get("lb")
	cp := cur.DeepCopy()
	cp.Spec.Type = corev1.ServiceTypeNodePort
	h.put(t, cp)
	if got := h.sync(t, "lb"); got != "" {
		t.Errorf("ingress after the change to NodePort: %q", got)
	}
}

func TestSyncPool(t *testing.T) {
	h := newHarness(t, "192.0.2.0/30") // two addresses: .1 and .2
	h.node(t, makeNode("n1", "192.168.0.2", true))
	for _, n := range []string{"a", "b", "c"} {
		h.put(t, makeSvc(n, corev1.ServiceTypeLoadBalancer))
	}
	if a, b := h.sync(t, "a"), h.sync(t, "b"); a != "192.0.2.1" || b != "192.0.2.2" {
		t.Fatalf("a %q b %q, want distinct pool addresses", a, b)
	}
	if got := h.sync(t, "a"); got != "192.0.2.1" {
		t.Errorf("a again: %q", got)
	}
	if got := h.sync(t, "c"); got != "" {
		t.Errorf("c with the pool exhausted: %q", got)
	}
	found := false
	for len(h.events.Events) > 0 && !found {
		found = strings.Contains(<-h.events.Events, "AllocationFailed")
	}
	if !found {
		t.Error("no AllocationFailed event for c")
	}
	// Deleting a frees its address; c is requeued and gets it.
	h.del(t, "a")
	if got := h.sync(t, "a"); got != "gone" {
		t.Errorf("a after deletion: %q", got)
	}
	if h.c.queue.Len() != 1 {
		t.Errorf("queue after a release: %d keys, want c", h.c.queue.Len())
	}
	if got := h.sync(t, "c"); got != "192.0.2.1" {
		t.Errorf("c after a's deletion: %q", got)
	}
	// A type change releases the address.
	cur, _ := h.c.services.Services("ns").Get("b")
	cp := cur.DeepCopy()
	cp.Spec.Type = corev1.ServiceTypeClusterIP
	h.put(t, cp)
	if got := h.sync(t, "b"); got != "" {
		t.Errorf("b after the change to ClusterIP: %q", got)
	}
	if _, held := h.c.pool.Get("ns/b"); held {
		t.Error("b still holds a pool address")
	}
}

func TestOccupyAfterRestart(t *testing.T) {
	h := newHarness(t, "192.0.2.0/29")
	old := makeSvc("old", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{vip("192.0.2.5")}
	})
	h.put(t, old)
	h.put(t, makeSvc("new", corev1.ServiceTypeLoadBalancer))
	h.c.occupy()
	if got := h.sync(t, "new"); got != "192.0.2.1" {
		t.Errorf("new: %q", got)
	}
	if got := h.sync(t, "old"); got != "192.0.2.5" {
		t.Errorf("old kept %q, want 192.0.2.5", got)
	}
}
