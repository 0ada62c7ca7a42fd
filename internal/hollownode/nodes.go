package hollownode

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Worker counts: heartbeats are one small write each; pod syncs dominate.
const (
	heartbeatWorkers = 8
	podWorkers       = 16
)

// Nodes is a set of hollow nodes sharing one client, informers and queues.
type Nodes struct {
	cfg    Config
	log    *slog.Logger
	timing timing
	now    func() time.Time

	names []string
	nodes map[string]*node // fixed after New

	ready chan struct{}

	nodeLister listerscorev1.NodeLister
	podLister  listerscorev1.PodLister
	hbQueue    workqueue.TypedRateLimitingInterface[string] // node names
	podQueue   workqueue.TypedRateLimitingInterface[string] // pod namespace/name

	mu   sync.Mutex
	pods map[string]*podRun // by namespace/name; a worker owns its key's entry while syncing it
}

// node is one simulated node.
type node struct {
	name       string
	index      int
	internalIP string
	machineID  string
	bootID     string
	heartbeat  atomic.Bool

	mu         sync.Mutex
	uid        types.UID
	lease      *coordinationv1.Lease // last written, reused for renewals
	lastRenew  time.Time
	lastReport time.Time
	pool       *ipPool // lazily built from spec.podCIDR at the first pod
}

// New validates cfg and prepares the nodes; Run registers and runs them.
func New(cfg Config) (*Nodes, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	n := &Nodes{
		cfg: cfg, log: cfg.Logger.With("component", "hollow-nodes"), timing: defaultTiming, now: time.Now,
		nodes: make(map[string]*node, cfg.Count), ready: make(chan struct{}), pods: map[string]*podRun{},
	}
	if cfg.LeaseRenewInterval > 0 {
		n.timing.leaseRenew = cfg.LeaseRenewInterval
	}
	for i := range cfg.Count {
		name := fmt.Sprintf("%s%d", cfg.NamePrefix, i)
		nd := &node{name: name, index: i, internalIP: internalIP(i).String(),
			machineID: stableID(name), bootID: randomID()}
		nd.heartbeat.Store(true)
		n.names = append(n.names, name)
		n.nodes[name] = nd
	}
	return n, nil
}

// Ready is closed once every Node object (and its Lease) is registered and
// the pod informer has synced.
func (n *Nodes) Ready() <-chan struct{} { return n.ready }

// Names lists the simulated nodes in index order.
func (n *Nodes) Names() []string { return append([]string(nil), n.names...) }

// SetHeartbeat turns a node's kubelet on or off. While off the node is
// silent: no Lease renewals, no node or pod status writes. Unknown names
// are ignored.
func (n *Nodes) SetHeartbeat(name string, on bool) {
	nd := n.nodes[name]
	if nd == nil || nd.heartbeat.Swap(on) == on || !on {
		return
	}
	// Coming back: report at once and catch up on the node's pods (once
	// Run has started them; until then there is nothing to catch up on).
	select {
	case <-n.ready:
	default:
		return
	}
	n.hbQueue.Add(name)
	pods, _ := n.podLister.List(everything)
	for _, p := range pods {
		if p.Spec.NodeName == name {
			n.podQueue.Add(podKey(p))
		}
	}
}

// internalIP is node i's address in 10.200.0.0/16 (10.200.0.1 for i=0).
func internalIP(i int) netip.Addr {
	v := i + 1
	return netip.AddrFrom4([4]byte{10, 200, byte(v >> 8), byte(v)})
}

// defaultPodCIDR is node i's pod range when spec.podCIDR is unset:
// 10.244.<i>.0/24, continuing into 10.245.0.0/24 and on past 256 nodes.
func defaultPodCIDR(i int) string {
	return fmt.Sprintf("10.%d.%d.0/24", 244+i/256, i%256)
}

// Run registers the nodes, then heartbeats and plays the kubelet for their
// pods until ctx ends.
func (n *Nodes) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(n.cfg.Client, 0)
	podInf, nodeInf := factory.Core().V1().Pods(), factory.Core().V1().Nodes()
	n.podLister, n.nodeLister = podInf.Lister(), nodeInf.Lister()
	n.hbQueue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "hollow-node-heartbeat"})
	n.podQueue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "hollow-node-pods"})
	defer n.hbQueue.ShutDown()
	defer n.podQueue.ShutDown()

	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    n.enqueuePod,
		UpdateFunc: func(_, obj interface{}) { n.enqueuePod(obj) },
		DeleteFunc: n.enqueuePod,
	}); err != nil {
		return err
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj interface{}) {
			// Someone else (a node lifecycle controller) marked us not
			// ready: answer at the next heartbeat rather than in 10 s.
			if nd, ok := obj.(*corev1.Node); ok && n.nodes[nd.Name] != nil && !readyTrue(nd) {
				n.hbQueue.Add(nd.Name)
			}
		},
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	if err := n.registerAll(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while registering
		}
		return err
	}
	if !cache.WaitForCacheSync(ctx.Done(), podInf.Informer().HasSynced, nodeInf.Informer().HasSynced) {
		return nil
	}
	n.adoptPodIPs()
	close(n.ready)
	n.log.Info("hollow nodes registered", "count", len(n.names), "prefix", n.cfg.NamePrefix)

	var wg sync.WaitGroup
	for range min(heartbeatWorkers, len(n.names)) {
		wg.Go(func() {
			for n.processNext(ctx, n.hbQueue, n.syncHeartbeat) {
			}
		})
	}
	for range podWorkers {
		wg.Go(func() {
			for n.processNext(ctx, n.podQueue, n.syncPod) {
			}
		})
	}
	// Spread the first renewals over one period so 1000 nodes do not
	// heartbeat in lockstep.
	for i, name := range n.names {
		n.hbQueue.AddAfter(name, n.timing.leaseRenew*time.Duration(i)/time.Duration(len(n.names)))
	}
	<-ctx.Done()
	n.hbQueue.ShutDown()
	n.podQueue.ShutDown()
	wg.Wait()
	return nil
}

// processNext runs sync for one key: forget on success, requeue with rate
// limiting on error. It reports false once the queue shuts down.
func (n *Nodes) processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string],
	sync func(context.Context, string) error) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	if err := sync(ctx, key); err != nil {
		switch {
		case ctx.Err() != nil:
		case apierrors.IsConflict(err):
			n.log.Debug("stale copy, requeued", "key", key, "err", err)
		default:
			n.log.Warn("sync failed, requeued", "key", key, "err", err)
		}
		q.AddRateLimited(key)
		return true
	}
	q.Forget(key)
	return true
}
