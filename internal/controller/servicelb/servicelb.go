package servicelb

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Name is the controller's name in metrics and logs.
const Name = "servicelb"

// Controller is the ServiceLB controller.
type Controller struct {
	client   kubernetes.Interface
	services corelisters.ServiceLister
	nodes    corelisters.NodeLister
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
	metrics  *metrics.Metrics
	synced   []cache.InformerSynced

	mu   sync.Mutex
	pool *Pool // nil: node addresses
	// waiting are Services that found the pool exhausted; a release
	// requeues them.
	waiting map[string]bool
	// occupied: the addresses Services showed at start are recorded.
	occupied sync.Once
}

// New wires the controller.
func New(cc *controller.Context) (*Controller, error) {
	svcInf := cc.Informers.Core().V1().Services()
	nodeInf := cc.Informers.Core().V1().Nodes()
	c := &Controller{
		client: cc.Client, services: svcInf.Lister(), nodes: nodeInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		recorder: cc.Recorder("service-lb-controller"),
		log:      cc.Logger.With("controller", Name),
		metrics:  cc.Metrics,
		synced:   []cache.InformerSynced{svcInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
		waiting:  map[string]bool{},
	}
	if cc.Options.ServiceLBPool != nil {
		p, err := NewPool(cc.Options.ServiceLBPool.String())
		if err != nil {
			return nil, err
		}
		c.pool = p
	}
	_, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	})
	if err != nil {
		return nil, err
	}
	if c.pool == nil {
		// Node addresses are the ingress: every node change may matter.
		_, err = nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { c.enqueueAll() },
			UpdateFunc: func(old, cur any) {
				o, n := old.(*corev1.Node), cur.(*corev1.Node)
				if nodeReady(o) != nodeReady(n) || !equality.Semantic.DeepEqual(o.Status.Addresses, n.Status.Addresses) {
					c.enqueueAll()
				}
			},
			DeleteFunc: func(any) { c.enqueueAll() },
		})
	}
	return c, err
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		c.queue.Add(key)
	}
}

// enqueueAll queues every LoadBalancer Service.
func (c *Controller) enqueueAll() {
	svcs, _ := c.services.List(labels.Everything())
	for _, s := range svcs {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			c.enqueue(s)
		}
	}
}

// Run processes Services until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, c.synced, func(ctx context.Context) bool {
		c.occupied.Do(c.occupy)
		return c.next(ctx)
	})
}

// occupy records the pool addresses Services already show (from before a
// restart or a change of leader), oldest Service first, before anything is
// handed out.
func (c *Controller) occupy() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pool == nil {
		return
	}
	svcs, _ := c.services.List(labels.Everything())
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].CreationTimestamp.Before(&svcs[j].CreationTimestamp) })
	for _, s := range svcs {
		if !wanted(s) {
			continue
		}
		key := s.Namespace + "/" + s.Name
		for _, ing := range s.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(ing.IP); err == nil && c.pool.Occupy(key, ip) {
				break
			}
		}
	}
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.metrics.Timed(Name, func() error { return c.sync(ctx, key) }); err != nil {
		c.log.Debug("sync failed, will retry", "service", key, "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// wanted reports whether ServiceLB serves svc: type LoadBalancer and no
// loadBalancerClass (another implementation's otherwise).
func wanted(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.release(key)
		return nil
	}
	if err != nil {
		return err
	}
	if !wanted(svc) {
		c.release(key)
		// A Service that stopped being a LoadBalancer keeps no ingress;
		// one with a class is another controller's.
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) > 0 {
			return c.setIngress(ctx, svc, nil)
		}
		return nil
	}
	var ingress []corev1.LoadBalancerIngress
	if c.pool != nil {
		ip, err := c.allocate(svc, key)
		if errors.Is(err, ErrPoolExhausted) {
			c.recorder.Eventf(svc, corev1.EventTypeWarning, "AllocationFailed", "Failed to allocate IP for %q: %v", key, err)
			return nil // requeued when an address is released
		}
		if err != nil {
			return err
		}
		ingress = []corev1.LoadBalancerIngress{vip(ip.String())}
	} else {
		nodes, err := c.nodes.List(labels.Everything())
		if err != nil {
			return err
		}
		ingress = NodeIngress(nodes)
	}
	return c.setIngress(ctx, svc, ingress)
}

// allocate returns the pool address of svc: the one it holds, else the
// one its status shows if free, else a new one.
func (c *Controller) allocate(svc *corev1.Service, key string) (netip.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ip, ok := c.pool.Get(key); ok {
		return ip, nil
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil && c.pool.Occupy(key, ip) {
			delete(c.waiting, key)
			return ip, nil
		}
	}
	ip, err := c.pool.Allocate(key)
	if errors.Is(err, ErrPoolExhausted) {
		c.waiting[key] = true
		return ip, err
	}
	delete(c.waiting, key)
	if err == nil {
		c.recorder.Eventf(svc, corev1.EventTypeNormal, "IPAllocated", "Assigned IP %s", ip)
	}
	return ip, err
}

// release frees key's pool address and requeues the Services waiting for
// one.
func (c *Controller) release(key string) {
	if c.pool == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.waiting, key)
	if !c.pool.Release(key) {
		return
	}
	for k := range c.waiting {
		c.queue.Add(k)
	}
}

func (c *Controller) setIngress(ctx context.Context, svc *corev1.Service, ingress []corev1.LoadBalancerIngress) error {
	if equality.Semantic.DeepEqual(svc.Status.LoadBalancer.Ingress, ingress) ||
		(len(svc.Status.LoadBalancer.Ingress) == 0 && len(ingress) == 0) {
		return nil
	}
	cp := svc.DeepCopy()
	cp.Status.LoadBalancer.Ingress = ingress
	_, err := c.client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func vip(ip string) corev1.LoadBalancerIngress {
	mode := corev1.LoadBalancerIPModeVIP
	return corev1.LoadBalancerIngress{IP: ip, IPMode: &mode}
}

// NodeIngress is the ingress of a LoadBalancer Service without a pool: the
// InternalIPs of the Ready nodes, sorted, each once.
func NodeIngress(nodes []*corev1.Node) []corev1.LoadBalancerIngress {
	var ips []string
	for _, n := range nodes {
		if !nodeReady(n) || n.DeletionTimestamp != nil {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && !slices.Contains(ips, a.Address) {
				ips = append(ips, a.Address)
			}
		}
	}
	sort.Slice(ips, func(i, j int) bool {
		a, errA := netip.ParseAddr(ips[i])
		b, errB := netip.ParseAddr(ips[j])
		if errA != nil || errB != nil {
			return ips[i] < ips[j]
		}
		return a.Less(b)
	})
	var out []corev1.LoadBalancerIngress
	for _, ip := range ips {
		out = append(out, vip(ip))
	}
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

var _ controller.Controller = (*Controller)(nil)
