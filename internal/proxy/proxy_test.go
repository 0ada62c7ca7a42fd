package proxy

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

func fakeClient() kubernetes.Interface { return fake.NewSimpleClientset() }

// testProxy is a Proxy on a knftables.Fake whose listers read two stores
// the test fills directly.
type testProxy struct {
	*Proxy
	nft    *knftables.Fake
	svcs   cache.Indexer
	slices cache.Indexer
	lastTx string
	ctx    context.Context
	t      *testing.T
}

type recordingNFT struct {
	*knftables.Fake
	last *string
}

func (r recordingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	*r.last = tx.String()
	return r.Fake.Run(ctx, tx)
}

func newTestProxy(t *testing.T) *testProxy {
	f := knftables.NewFake(knftables.IPv4Family, "skp-unit")
	tp := &testProxy{nft: f, ctx: context.Background(), t: t}
	p := newProxy(Config{Client: fakeClient(), NodeName: "n1", ClusterCIDR: "10.244.0.0/16", Table: "skp-unit",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, recordingNFT{f, &tp.lastTx})
	tp.svcs = cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	tp.slices = cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{serviceIndex: sliceServiceIndex})
	p.services = corelisters.NewServiceLister(tp.svcs)
	p.slices = tp.slices
	p.setNode(&corev1.Node{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}}}})
	tp.Proxy = p
	return tp
}

func (tp *testProxy) sync() {
	tp.t.Helper()
	tp.lastTx = ""
	if err := tp.syncOnce(tp.ctx); err != nil {
		tp.t.Fatalf("sync: %v", err)
	}
}

func (tp *testProxy) putSvc(s *corev1.Service) {
	tp.svcs.Update(s)
	tp.enqueue(s.Namespace + "/" + s.Name)
}

func (tp *testProxy) putSlice(s *discoveryv1.EndpointSlice) {
	tp.slices.Update(s)
	tp.enqueue(s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName])
}

func TestSyncIncremental(t *testing.T) {
	tp := newTestProxy(t)
	tp.putSvc(makeSvc("web").ip("10.96.0.10").port(80).obj())
	tp.putSlice(makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1")))
	tp.putSvc(makeSvc("db").ip("10.96.0.20").port(5432).obj())
	tp.putSlice(makeSlice("db", "db-1", 5432, ready("10.244.0.9", "n1")))
	tp.requeueFull()
	tp.sync()
	dump := tp.nft.Dump()
	for _, want := range []string{"10.96.0.10 . tcp . 80 : goto service-", "dnat to 10.244.0.5:8080", "dnat to 10.244.0.9:5432",
		"add element ip skp-unit nodeport-ips { 192.168.1.10 }", "delete table ip skp-unit"} {
		if !strings.Contains(dump+tp.lastTx, want) {
			t.Errorf("after the full sync, missing %q:\n%s", want, dump)
		}
	}
	select {
	case <-tp.Ready():
	default:
		t.Error("Ready not closed after the first full sync")
	}

	// One endpoint more for web: only web's objects are touched.
	tp.putSlice(makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"), ready("10.244.0.6", "n1")))
	tp.sync()
	if strings.Contains(tp.lastTx, "db") || strings.Contains(tp.lastTx, "delete table") {
		t.Errorf("partial sync touched more than web:\n%s", tp.lastTx)
	}
	if !strings.Contains(tp.nft.Dump(), "numgen random mod 2") || !strings.Contains(tp.nft.Dump(), "dnat to 10.244.0.6:8080") {
		t.Errorf("new endpoint not programmed:\n%s", tp.nft.Dump())
	}

	// Nothing changed: no transaction.
	tp.enqueue("ns/web")
	tp.sync()
	if tp.lastTx != "" {
		t.Errorf("a no-op sync ran a transaction:\n%s", tp.lastTx)
	}

	// All endpoints gone: reject instead of DNAT, chains removed.
	tp.putSlice(makeSlice("web", "web-1", 8080))
	tp.sync()
	dump = tp.nft.Dump()
	if !strings.Contains(dump, "10.96.0.10 . tcp . 80 : goto reject-chain") || strings.Contains(dump, "10.244.0.5") {
		t.Errorf("service without endpoints not rejected:\n%s", dump)
	}

	// Service deleted: every trace gone, db untouched.
	tp.svcs.Delete(makeSvc("web").obj())
	tp.enqueue("ns/web")
	tp.sync()
	dump = tp.nft.Dump()
	if strings.Contains(dump, "ns/web") || strings.Contains(dump, "10.96.0.10") {
		t.Errorf("deleted service left rules:\n%s", dump)
	}
	if !strings.Contains(dump, "dnat to 10.244.0.9:5432") {
		t.Errorf("db lost its rules:\n%s", dump)
	}

	// Affinity on, then a new timeout: sets are replaced, not edited in place.
	tp.putSvc(makeSvc("db").ip("10.96.0.20").port(5432).affinity(30).obj())
	tp.sync()
	if !strings.Contains(tp.nft.Dump(), "timeout 30s") {
		t.Errorf("affinity set missing:\n%s", tp.nft.Dump())
	}
	tp.putSvc(makeSvc("db").ip("10.96.0.20").port(5432).affinity(90).obj())
	tp.sync()
	dump = tp.nft.Dump()
	if !strings.Contains(dump, "timeout 90s") || strings.Contains(dump, "timeout 30s") {
		t.Errorf("affinity timeout not replaced:\n%s", dump)
	}
	if s := tp.Metrics().Snapshot(); s.FullSyncs != 1 || s.Syncs < 5 || s.Errors != 0 {
		t.Errorf("metrics: %+v", s)
	}
}

// A full sync replaces whatever the table held, e.g. rules of Services
// deleted while the proxy was down.
func TestFullSyncRemovesStaleRules(t *testing.T) {
	tp := newTestProxy(t)
	tp.putSvc(makeSvc("old").ip("10.96.0.30").port(80).obj())
	tp.putSlice(makeSlice("old", "old-1", 80, ready("10.244.0.7", "n1")))
	tp.requeueFull()
	tp.sync()

	// "Restart": a new proxy on the same table, with the Service gone.
	tp2 := newTestProxy(t)
	tp2.nft = tp.nft
	tp2.Proxy.nft = recordingNFT{tp.nft, &tp2.lastTx}
	tp2.putSvc(makeSvc("new").ip("10.96.0.31").port(80).obj())
	tp2.requeueFull()
	tp2.sync()
	dump := tp.nft.Dump()
	if strings.Contains(dump, "10.96.0.30") || strings.Contains(dump, "ns/old") {
		t.Errorf("stale rules survived a full sync:\n%s", dump)
	}
	if !strings.Contains(dump, "10.96.0.31 . tcp . 80 : goto reject-chain") {
		t.Errorf("new service missing:\n%s", dump)
	}
}

// A node's pod CIDR, when no --cluster-cidr is given, decides which
// sources are masqueraded; a change re-renders every Service.
func TestNodeCIDRDetectLocal(t *testing.T) {
	tp := newTestProxy(t)
	tp.Proxy.cfg.ClusterCIDR = ""
	tp.putSvc(makeSvc("web").ip("10.96.0.10").port(80).obj())
	tp.putSlice(makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1")))
	tp.requeueFull()
	tp.sync()
	if !strings.Contains(tp.nft.Dump(), "ip daddr 10.96.0.10 jump mark-for-masquerade") {
		t.Errorf("without a pod CIDR everything is masqueraded:\n%s", tp.nft.Dump())
	}
	tp.setNode(&corev1.Node{Spec: corev1.NodeSpec{PodCIDR: "10.244.3.0/24"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.11"}}}})
	tp.sync()
	dump := tp.nft.Dump()
	if !strings.Contains(dump, "ip saddr != 10.244.3.0/24 jump mark-for-masquerade") {
		t.Errorf("pod CIDR not used:\n%s", dump)
	}
	if !strings.Contains(dump, "nodeport-ips { 192.168.1.11 }") || strings.Contains(dump, "192.168.1.10") {
		t.Errorf("nodeport-ips not updated:\n%s", dump)
	}
}
