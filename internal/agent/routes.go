package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/kubelet"
)

// routeProtocol marks the routes the agent installs (`ip route` shows
// "proto 115").
const routeProtocol netlink.RouteProtocol = 115

// hostRoutes is the pod network between nodes, as flannel's host-gw
// backend, and the pods' egress masquerade (masq.go): for every other node, a route to its podCIDR via its
// InternalIP. Nodes whose InternalIP is an address of this host (agents
// sharing a machine) need none: their bridges are local. Routes stay when
// the agent stops (pods outlive it); a deleted node's route is removed.
type hostRoutes struct {
	client kubernetes.Interface
	node   string
	log    *slog.Logger

	nodes corelisters.NodeLister
	queue workqueue.TypedRateLimitingInterface[string]

	// routes is false with --disable-host-gw: only the egress
	// masquerade is kept then.
	routes bool
	egress *podEgress

	mu   sync.Mutex
	have map[string]*net.IPNet // node name → the podCIDR routed for it
	gws  map[string]net.IP     // node name → that route's gateway
}

func newHostRoutes(cfg Config) (*hostRoutes, error) {
	bridge := cfg.Bridge
	if bridge == "" {
		bridge = kubelet.DefaultBridge
	}
	eg, err := newPodEgress(bridge)
	if err != nil {
		return nil, err
	}
	return &hostRoutes{client: cfg.Client, node: cfg.NodeName, log: cfg.Logger.With("component", "routes"),
		routes: !cfg.DisableHostGW, egress: eg, have: map[string]*net.IPNet{}, gws: map[string]net.IP{}}, nil
}

// Run keeps the routes until ctx ends.
func (r *hostRoutes) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	factory := informers.NewSharedInformerFactory(r.client, 0)
	inf := factory.Core().V1().Nodes()
	r.nodes = inf.Lister()
	r.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "routes"})
	defer r.queue.ShutDown()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			r.queue.Add(key)
		}
	}
	reg, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, cur any) { enqueue(cur) }, DeleteFunc: enqueue,
	})
	if err != nil {
		return fmt.Errorf("routes: node handler: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil
	}
	go func() {
		<-ctx.Done()
		r.queue.ShutDown()
	}()
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		for r.next() {
		}
	}, time.Second)
	return nil
}

func (r *hostRoutes) next() bool {
	name, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(name)
	if err := r.sync(name); err != nil {
		r.log.Warn("route sync failed, will retry", "node", name, "err", err)
		r.queue.AddRateLimited(name)
		return true
	}
	r.queue.Forget(name)
	return true
}

func (r *hostRoutes) sync(name string) error {
	if err := r.syncRoute(name); err != nil {
		return err
	}
	nodes, err := r.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	return r.egress.sync(context.Background(), r.node, nodes)
}

func (r *hostRoutes) syncRoute(name string) error {
	var dst *net.IPNet
	var gw net.IP
	node, err := r.nodes.Get(name)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case name != r.node && r.routes:
		dst, gw = desiredRoute(node, localAddress)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	oldDst, oldGw := r.have[name], r.gws[name]
	if oldDst != nil && (dst == nil || oldDst.String() != dst.String() || !oldGw.Equal(gw)) {
		err := netlink.RouteDel(&netlink.Route{Dst: oldDst, Gw: oldGw, Protocol: routeProtocol})
		if err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("delete route %s via %s: %w", oldDst, oldGw, err)
		}
		delete(r.have, name)
		delete(r.gws, name)
		r.log.Info("removed route", "node", name, "dst", oldDst.String(), "via", oldGw.String())
	}
	if dst == nil || r.have[name] != nil {
		return nil
	}
	if err := netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: gw, Protocol: routeProtocol}); err != nil {
		return fmt.Errorf("route %s via %s: %w", dst, gw, err)
	}
	r.have[name], r.gws[name] = dst, gw
	r.log.Info("added route", "node", name, "dst", dst.String(), "via", gw.String())
	return nil
}

// desiredRoute is the route to node's pods: its podCIDR via its
// InternalIP of the same family; none without either, or when the
// InternalIP is local (a node on this very host).
func desiredRoute(node *corev1.Node, isLocal func(net.IP) bool) (*net.IPNet, net.IP) {
	if node.Spec.PodCIDR == "" || node.DeletionTimestamp != nil {
		return nil, nil
	}
	_, dst, err := net.ParseCIDR(node.Spec.PodCIDR)
	if err != nil {
		return nil, nil
	}
	v4 := dst.IP.To4() != nil
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip := net.ParseIP(a.Address)
		if ip == nil || (ip.To4() != nil) != v4 {
			continue
		}
		if isLocal(ip) {
			return nil, nil
		}
		return dst, ip
	}
	return nil, nil
}

// localAddress reports whether ip is assigned to an interface of this host.
func localAddress(ip net.IP) bool {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return true // unknown: better no route than a route via ourselves
	}
	for _, a := range addrs {
		if a.IP.Equal(ip) {
			return true
		}
	}
	return ip.IsLoopback()
}
