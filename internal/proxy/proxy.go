package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

// serviceIndex indexes EndpointSlices by "<namespace>/<service>".
const serviceIndex = "service"

// Proxy programs one node's Service rules.
type Proxy struct {
	cfg     Config
	nft     knftables.Interface
	metrics *Metrics
	ready   chan struct{}
	kick    chan struct{}

	mu       sync.Mutex
	dirty    map[string]struct{} // Service keys to re-render
	full     bool                // rebuild the whole table next
	nodeIPs  []string
	podCIDRs []string

	// Owned by the sync loop: what the kernel has.
	applied        map[string]*rendered
	appliedNodeIPs []string
	appliedLocal   string
	readyClosed    bool
	appliedUDP     map[string]udpService // UDP ports by Service key, for conntrack clean-up

	ct conntrack // nil: no conntrack clean-up (unit tests)

	services corelisters.ServiceLister
	slices   cache.Indexer
}

// New validates cfg and opens the nftables table; nothing is programmed
// until Run.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	nft, err := knftables.New(knftables.IPv4Family, cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("proxy: nftables: %w", err)
	}
	p := newProxy(cfg, nft)
	p.ct = kernelConntrack{}
	return p, nil
}

func newProxy(cfg Config, nft knftables.Interface) *Proxy {
	cfg.setDefaults()
	return &Proxy{cfg: cfg, nft: nft, metrics: newMetrics(), ready: make(chan struct{}), kick: make(chan struct{}, 1),
		dirty: map[string]struct{}{}, applied: map[string]*rendered{}, appliedUDP: map[string]udpService{}}
}

// Ready is closed once the first full sync is in the kernel.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Metrics returns the sync counters and histograms.
func (p *Proxy) Metrics() *Metrics { return p.metrics }

// Table is the nftables table the proxy owns.
func (p *Proxy) Table() string { return p.cfg.Table }

// Run watches the API and keeps the table in sync until ctx ends. The rules
// stay in place afterwards.
func (p *Proxy) Run(ctx context.Context) error {
	log := p.cfg.Logger.With("component", "proxy", "table", p.cfg.Table)
	factory := informers.NewSharedInformerFactory(p.cfg.Client, 0)
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	if err := sliceInf.Informer().AddIndexers(cache.Indexers{serviceIndex: sliceServiceIndex}); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(p.cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", p.cfg.NodeName).String()
		}))
	nodeInf := nodeFactory.Core().V1().Nodes()
	p.services = svcInf.Lister()
	p.slices = sliceInf.Informer().GetIndexer()

	onSvc := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			p.enqueue(key)
		}
	}
	onSlice := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
				p.enqueue(s.Namespace + "/" + name)
			}
		}
	}
	onNode := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok {
			p.setNode(n)
		}
	}
	if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onSvc, UpdateFunc: func(_, n any) { onSvc(n) }, DeleteFunc: onSvc}); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if _, err := sliceInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onSlice, UpdateFunc: func(_, n any) { onSlice(n) }, DeleteFunc: onSlice}); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onNode, UpdateFunc: func(_, n any) { onNode(n) }}); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	factory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	defer factory.Shutdown()
	defer nodeFactory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("proxy: %v cache did not sync", typ)
		}
	}
	nodeFactory.WaitForCacheSync(ctx.Done())
	p.mu.Lock()
	p.full = true
	p.mu.Unlock()
	p.signal()

	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-retry.C:
		}
		// Coalesce a burst of events into one transaction.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.cfg.MinSyncInterval):
		}
		if err := p.syncOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("sync failed; rebuilding the table", "err", err, "retry", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
}

func sliceServiceIndex(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
		return []string{s.Namespace + "/" + name}, nil
	}
	return nil, nil
}

func (p *Proxy) enqueue(key string) {
	p.mu.Lock()
	p.dirty[key] = struct{}{}
	p.mu.Unlock()
	p.signal()
}

func (p *Proxy) signal() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// setNode records the addresses NodePorts answer on and the pod CIDRs that
// count as local traffic.
func (p *Proxy) setNode(n *corev1.Node) {
	var ips []string
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
			ips = append(ips, ip.String())
		}
	}
	sort.Strings(ips)
	var cidrs []string
	for _, c := range append([]string{n.Spec.PodCIDR}, n.Spec.PodCIDRs...) {
		if pr, err := netip.ParsePrefix(c); err == nil && pr.Addr().Is4() {
			cidrs = append(cidrs, pr.Masked().String())
		}
	}
	sort.Strings(cidrs)
	cidrs = dedup(cidrs)
	p.mu.Lock()
	changed := !equal(ips, p.nodeIPs) || !equal(cidrs, p.podCIDRs)
	p.nodeIPs, p.podCIDRs = ips, cidrs
	p.mu.Unlock()
	if changed {
		p.signal()
	}
}

func dedup(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// local returns what the rules need to know about this node.
func (p *Proxy) localInfo(podCIDRs []string) local {
	if p.cfg.ClusterCIDR != "" {
		return local{cidrs: []string{netip.MustParsePrefix(p.cfg.ClusterCIDR).Masked().String()}}
	}
	return local{cidrs: podCIDRs}
}

// render renders the Service key from the listers; nil when it needs no
// rules. It also returns the Service's UDP ports (nil: none).
func (p *Proxy) render(key string, loc local) (*rendered, udpService, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, nil, err
	}
	svc, err := p.services.Services(ns).Get(name)
	if err != nil {
		return nil, nil, nil // deleted
	}
	objs, err := p.slices.ByIndex(serviceIndex, key)
	if err != nil {
		return nil, nil, err
	}
	slices := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		slices = append(slices, o.(*discoveryv1.EndpointSlice))
	}
	sps := servicePorts(svc, slices, p.cfg.NodeName)
	udp := udpPorts(sps)
	r := renderService(sps, loc)
	if len(r.chains) == 0 && len(r.elements) == 0 {
		return nil, udp, nil
	}
	return r, udp, nil
}

// syncOnce applies what changed since the last sync: everything when a
// rebuild is due, else the dirty Services' diffs.
func (p *Proxy) syncOnce(ctx context.Context) error {
	p.mu.Lock()
	full, dirty := p.full, p.dirty
	p.full, p.dirty = false, map[string]struct{}{}
	nodeIPs, podCIDRs := p.nodeIPs, p.podCIDRs
	p.mu.Unlock()

	start := time.Now()
	loc := p.localInfo(podCIDRs)
	locKey := fmt.Sprint(loc.cidrs)
	tx := p.nft.NewTransaction()
	pending := map[string]*rendered{}
	pendingUDP := map[string]udpService{}
	if full {
		// Delete and re-create in one transaction: whatever an earlier run
		// left (Services deleted meanwhile) is gone, atomically.
		tx.Add(&knftables.Table{})
		tx.Delete(&knftables.Table{})
		writeBase(tx, p.cfg.Table, nodeIPs)
		svcs, err := p.services.List(labels.Everything())
		if err != nil {
			return err
		}
		for _, svc := range svcs {
			key := svc.Namespace + "/" + svc.Name
			r, udp, err := p.render(key, loc)
			if err != nil {
				p.requeueFull()
				return err
			}
			if r != nil {
				writeRendered(tx, r)
				pending[key] = r
			}
			pendingUDP[key] = udp
		}
	} else {
		if locKey != p.appliedLocal {
			for k := range p.applied {
				dirty[k] = struct{}{}
			}
			svcs, _ := p.services.List(labels.Everything())
			for _, svc := range svcs {
				dirty[svc.Namespace+"/"+svc.Name] = struct{}{}
			}
		}
		if !equal(nodeIPs, p.appliedNodeIPs) {
			for _, ip := range p.appliedNodeIPs {
				tx.Delete(&knftables.Element{Set: setNodePortIPs, Key: []string{ip}})
			}
			for _, ip := range nodeIPs {
				tx.Add(&knftables.Element{Set: setNodePortIPs, Key: []string{ip}})
			}
		}
		for key := range dirty {
			r, udp, err := p.render(key, loc)
			if err != nil {
				p.requeueFull()
				return err
			}
			writeDiff(tx, p.applied[key], r)
			pending[key] = r
			pendingUDP[key] = udp
		}
	}
	if tx.NumOperations() == 0 {
		p.appliedLocal = locKey
		p.cleanConntrack(ctx, full, pendingUDP)
		return nil
	}
	err := p.nft.Run(ctx, tx)
	p.metrics.observe(full, time.Since(start), err)
	if err != nil {
		p.requeueFull()
		return fmt.Errorf("proxy: apply %d operations: %w", tx.NumOperations(), err)
	}
	if full {
		p.applied = map[string]*rendered{}
	}
	for k, r := range pending {
		if r == nil {
			delete(p.applied, k)
		} else {
			p.applied[k] = r
		}
	}
	p.appliedNodeIPs, p.appliedLocal = nodeIPs, locKey
	p.cleanConntrack(ctx, full, pendingUDP)
	if full && !p.readyClosed {
		p.readyClosed = true
		close(p.ready)
	}
	level := slog.LevelDebug
	if full {
		level = slog.LevelInfo
	}
	p.cfg.Logger.Log(ctx, level, "proxy sync", "component", "proxy", "full", full, "services", len(pending),
		"operations", tx.NumOperations(), "took", time.Since(start).Round(time.Microsecond))
	return nil
}

// cleanConntrack deletes the UDP conntrack entries the rules now applied
// made stale, and records the UDP ports. After a full sync every Service
// was rendered; the first one (at start) knows nothing of before, so each
// UDP port with endpoints counts as new, as upstream does.
func (p *Proxy) cleanConntrack(ctx context.Context, full bool, cur map[string]udpService) {
	var filters []flowFilter
	for key, u := range cur {
		filters = append(filters, staleFlows(p.appliedUDP[key], u)...)
	}
	if full {
		for key, old := range p.appliedUDP {
			if _, ok := cur[key]; !ok {
				filters = append(filters, staleFlows(old, nil)...)
			}
		}
		p.appliedUDP = map[string]udpService{}
	}
	for key, u := range cur {
		if u == nil {
			delete(p.appliedUDP, key)
		} else {
			p.appliedUDP[key] = u
		}
	}
	if p.ct == nil || len(filters) == 0 {
		return
	}
	n, err := p.ct.deleteUDP(filters)
	if err != nil {
		p.cfg.Logger.Warn("conntrack clean-up failed", "component", "proxy", "err", err)
		return
	}
	p.cfg.Logger.Log(ctx, slog.LevelDebug, "conntrack clean-up", "component", "proxy", "filters", len(filters), "deleted", n)
}

func (p *Proxy) requeueFull() {
	p.mu.Lock()
	p.full = true
	p.mu.Unlock()
}
