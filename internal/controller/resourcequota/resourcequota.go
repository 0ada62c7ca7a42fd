package resourcequota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
	"github.com/skiff-sh/skiff/internal/quota"
)

// Name is the controller's name in the registry and in metrics.
const Name = "resourcequota"

// ResyncPeriod is how often every quota is recomputed regardless of
// events (upstream's --resource-quota-sync-period default).
const ResyncPeriod = 5 * time.Minute

// Controller is the resource quota controller.
type Controller struct {
	client   kubernetes.Interface
	quotas   corelisters.ResourceQuotaLister
	pods     corelisters.PodLister
	services corelisters.ServiceLister
	pvcs     corelisters.PersistentVolumeClaimLister
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
	metrics  *metrics.Metrics
	now      func() time.Time
	synced   []cache.InformerSynced
	resync   time.Duration

	// Object counts of other resources come from metadata informers,
	// started the first time a quota asks for them.
	metaInformers metadatainformer.SharedInformerFactory
	resolve       func(schema.GroupResource) (schema.GroupVersionResource, error)
	mu            sync.Mutex
	counted       map[schema.GroupVersionResource]informerLister
	stop          <-chan struct{}

	// release holds the quotas whose next sync may lower status.used.
	// Other syncs (queued by creates) only raise it: admission charged
	// every create to status.used before storing it, and caches lagging
	// those charges would otherwise hand the same room out twice.
	// A quota queued to be recounted after a pod's grace period may
	// release from that time on.
	releaseMu sync.Mutex
	release   map[string]time.Time
}

type informerLister struct {
	informer cache.SharedIndexInformer
	lister   cache.GenericLister
}

// New wires the controller to the shared informers.
func New(cc *controller.Context) (*Controller, error) {
	core := cc.Informers.Core().V1()
	c := &Controller{
		client:   cc.Client,
		quotas:   core.ResourceQuotas().Lister(),
		pods:     core.Pods().Lister(),
		services: core.Services().Lister(),
		pvcs:     core.PersistentVolumeClaims().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "resourcequota_primary"}),
		log:     cc.Logger.With("controller", Name),
		metrics: cc.Metrics,
		now:     time.Now,
		synced: []cache.InformerSynced{core.ResourceQuotas().Informer().HasSynced, core.Pods().Informer().HasSynced,
			core.Services().Informer().HasSynced, core.PersistentVolumeClaims().Informer().HasSynced},
		resync:        ResyncPeriod,
		metaInformers: cc.MetadataInformers,
		counted:       map[schema.GroupVersionResource]informerLister{},
		release:       map[string]time.Time{},
	}
	if cc.Discovery != nil {
		cached, ok := cc.Discovery.(discovery.CachedDiscoveryInterface)
		if !ok {
			cached = memory.NewMemCacheClient(cc.Discovery)
		}
		mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
		c.resolve = func(gr schema.GroupResource) (schema.GroupVersionResource, error) {
			gvr, err := mapper.ResourceFor(gr.WithVersion(""))
			if meta.IsNoMatchError(err) {
				mapper.Reset() // a resource added since discovery was read
				gvr, err = mapper.ResourceFor(gr.WithVersion(""))
			}
			return gvr, err
		}
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{core.ResourceQuotas().Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: c.enqueue,
			UpdateFunc: func(old, cur any) {
				o, n := old.(*corev1.ResourceQuota), cur.(*corev1.ResourceQuota)
				// Its own status writes come back here; only spec
				// changes (or a status someone else wrote) need a sync.
				if !apiequality.Semantic.DeepEqual(o.Spec, n.Spec) || !apiequality.Semantic.DeepEqual(n.Spec.Hard, n.Status.Hard) {
					c.enqueue(cur)
				}
			},
			// A quota resource counts quotas too.
			DeleteFunc: c.enqueueNamespaceOf,
		}},
		// A create only raises usage (see release): it catches objects
		// stored before admission saw the quota. A new quota, deletes,
		// relevant updates and the resync recount in full.
		{core.Pods().Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.growNamespaceOf,
			UpdateFunc: c.updatePod,
			DeleteFunc: c.enqueueNamespaceOf,
		}},
		{core.Services().Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: c.growNamespaceOf,
			UpdateFunc: func(old, cur any) {
				o, n := old.(*corev1.Service), cur.(*corev1.Service)
				if o.Spec.Type != n.Spec.Type || !apiequality.Semantic.DeepEqual(o.Spec.Ports, n.Spec.Ports) {
					c.enqueueNamespaceOf(cur)
				}
			},
			DeleteFunc: c.enqueueNamespaceOf,
		}},
		{core.PersistentVolumeClaims().Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: c.growNamespaceOf,
			UpdateFunc: func(old, cur any) {
				o, n := old.(*corev1.PersistentVolumeClaim), cur.(*corev1.PersistentVolumeClaim)
				if s1, s2 := quota.PVCStorage(o), quota.PVCStorage(n); s1.Cmp(s2) != 0 || quota.PVCClass(o) != quota.PVCClass(n) {
					c.enqueueNamespaceOf(cur)
				}
			},
			DeleteFunc: c.enqueueNamespaceOf,
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.add(k, true)
	}
}

// add queues a quota; with release its next sync may lower usage.
func (c *Controller) add(key string, release bool) {
	if release {
		c.allowRelease(key, c.now())
	}
	c.queue.Add(key)
}

// allowRelease lets syncs of key from time at on lower usage.
func (c *Controller) allowRelease(key string, at time.Time) {
	c.releaseMu.Lock()
	defer c.releaseMu.Unlock()
	if t, ok := c.release[key]; !ok || at.Before(t) {
		c.release[key] = at
	}
}

// takeRelease reports (and clears) whether key's sync now may lower
// usage.
func (c *Controller) takeRelease(key string, now time.Time) bool {
	c.releaseMu.Lock()
	defer c.releaseMu.Unlock()
	t, ok := c.release[key]
	if !ok || now.Before(t) {
		return false
	}
	delete(c.release, key)
	return true
}

// enqueueNamespaceOf queues every quota in the namespace of obj for a
// full recount.
func (c *Controller) enqueueNamespaceOf(obj any) { c.namespaceOf(obj, true) }

// growNamespaceOf queues every quota in the namespace of a new obj for a
// recount that may only raise usage.
func (c *Controller) growNamespaceOf(obj any) { c.namespaceOf(obj, false) }

func (c *Controller) namespaceOf(obj any, release bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, err := meta.Accessor(obj)
	if err != nil || m.GetNamespace() == "" {
		return
	}
	qs, err := c.quotas.ResourceQuotas(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return
	}
	for _, q := range qs {
		c.add(q.Namespace+"/"+q.Name, release)
	}
}

// updatePod queues the namespace's quotas when what the pod charges may
// have changed: it finished, began terminating, was resized or moved scope.
func (c *Controller) updatePod(old, cur any) {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	now := c.now()
	oc, _ := quota.ChargesPod(o, now)
	nc, _ := quota.ChargesPod(n, now)
	if oc != nc || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) ||
		!apiequality.Semantic.DeepEqual(o.Spec.Containers, n.Spec.Containers) ||
		!apiequality.Semantic.DeepEqual(o.Spec.InitContainers, n.Spec.InitContainers) {
		c.enqueueNamespaceOf(cur)
	}
}

// Run processes quotas until ctx ends, and queues every quota each
// resync period.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.mu.Lock()
	c.stop = ctx.Done()
	c.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for c.next(ctx) {
				}
			}, time.Second)
		}()
	}
	go wait.UntilWithContext(ctx, func(context.Context) {
		qs, _ := c.quotas.List(labels.Everything())
		for _, q := range qs {
			c.add(q.Namespace+"/"+q.Name, true)
		}
	}, c.resync)
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, Name, c.metrics, c.log, controller.NoResult(c.sync))
}

func (c *Controller) sync(ctx context.Context, key string) (err error) {
	now := c.now()
	release := c.takeRelease(key, now)
	defer func() {
		if err != nil && release {
			c.allowRelease(key, now) // the retry may still release
		}
	}()
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	q, err := c.quotas.ResourceQuotas(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	used, recheck, calcErr := c.calculate(ctx, q)
	if recheck > 0 {
		c.allowRelease(key, now.Add(recheck))
		c.queue.AddAfter(key, recheck)
	}
	for r, v := range q.Status.Used {
		if _, hard := q.Spec.Hard[r]; !hard {
			continue
		}
		cur, ok := used[r]
		// Keep the last observation of what could not be computed now,
		// and, unless this sync may release, what admission charged.
		if !ok || (!release && v.Cmp(cur) > 0) {
			used[r] = v.DeepCopy()
		}
	}
	hard := q.Spec.Hard.DeepCopy()
	if hard == nil {
		hard = corev1.ResourceList{}
	}
	if q.Status.Hard != nil && q.Status.Used != nil && quantitiesEqual(q.Status.Hard, hard) && quantitiesEqual(q.Status.Used, used) {
		return calcErr
	}
	next := q.DeepCopy()
	next.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: used}
	if _, err := c.client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return calcErr
		}
		return errors.Join(calcErr, fmt.Errorf("update status of resourcequota %s: %w", key, err))
	}
	return calcErr
}

// quantitiesEqual compares by value ("1000m" equals "1").
func quantitiesEqual(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

// calculate returns the usage of every resource in q's spec.hard that it
// could compute, and when to look again (a terminating pod stops counting
// at the end of its grace period).
func (c *Controller) calculate(ctx context.Context, q *corev1.ResourceQuota) (corev1.ResourceList, time.Duration, error) {
	ns := q.Namespace
	now := c.now()
	used := corev1.ResourceList{}
	var errs []error
	var recheck time.Duration

	// Pods: what the scoped, charging pods count and ask for.
	var pods []*corev1.Pod
	podsListed := false
	listPods := func() ([]*corev1.Pod, error) {
		if podsListed {
			return pods, nil
		}
		all, err := c.pods.Pods(ns).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		reqs := quota.ScopeRequirements(q)
		for _, p := range all {
			charge, until := quota.ChargesPod(p, now)
			if !until.IsZero() {
				if d := until.Sub(now) + time.Second; recheck == 0 || d < recheck {
					recheck = d
				}
			}
			if charge && quota.PodInScopes(p, reqs) {
				pods = append(pods, p)
			}
		}
		podsListed = true
		return pods, nil
	}
	for name := range q.Spec.Hard {
		switch {
		case name == corev1.ResourcePods || name == quota.CountPrefix+"pods":
			ps, err := listPods()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			used[name] = *resource.NewQuantity(int64(len(ps)), resource.DecimalSI)
			continue
		}
		if res, limits, ok := quota.PodCompute(name); ok {
			ps, err := listPods()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sum := resource.Quantity{Format: resource.DecimalSI}
			for _, p := range ps {
				sum.Add(quota.PodAmount(p, res, limits))
			}
			used[name] = sum
			continue
		}
		v, err := c.other(ctx, ns, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		used[name] = v
	}
	return used, recheck, errors.Join(errs...)
}

// other computes the resources that are not about pods: services,
// claims and object counts.
func (c *Controller) other(ctx context.Context, ns string, name corev1.ResourceName) (resource.Quantity, error) {
	count := func(n int64) resource.Quantity { return *resource.NewQuantity(n, resource.DecimalSI) }
	s := string(name)
	switch {
	case name == quota.ServicesLoadBalancers || name == quota.ServicesNodePorts:
		svcs, err := c.services.Services(ns).List(labels.Everything())
		if err != nil {
			return resource.Quantity{}, err
		}
		lbs, ports := quota.ServiceUsage(svcs)
		if name == quota.ServicesLoadBalancers {
			return count(lbs), nil
		}
		return count(ports), nil
	case name == corev1.ResourceRequestsStorage || strings.Contains(s, quota.StorageClassSuffix):
		claims, err := c.pvcs.PersistentVolumeClaims(ns).List(labels.Everything())
		if err != nil {
			return resource.Quantity{}, err
		}
		class, what := "", s
		if i := strings.Index(s, quota.StorageClassSuffix); i >= 0 {
			class, what = s[:i], s[i+len(quota.StorageClassSuffix):]
		}
		var n int64
		sum := resource.Quantity{Format: resource.BinarySI}
		for _, pvc := range claims {
			if class != "" && quota.PVCClass(pvc) != class {
				continue
			}
			n++
			sum.Add(quota.PVCStorage(pvc))
		}
		switch corev1.ResourceName(what) {
		case corev1.ResourceRequestsStorage:
			return sum, nil
		case corev1.ResourcePersistentVolumeClaims:
			return count(n), nil
		}
		return resource.Quantity{}, fmt.Errorf("resource %s: not a storage class resource quota can track", name)
	}
	gr, ok := quota.CountedResource(name)
	if !ok {
		return resource.Quantity{}, fmt.Errorf("resource %s: quota cannot track it", name)
	}
	n, err := c.countObjects(ctx, ns, gr)
	if err != nil {
		return resource.Quantity{}, fmt.Errorf("count %s: %w", gr, err)
	}
	return count(n), nil
}

// countObjects counts the objects of gr in ns.
func (c *Controller) countObjects(ctx context.Context, ns string, gr schema.GroupResource) (int64, error) {
	switch gr {
	case schema.GroupResource{Resource: "services"}:
		l, err := c.services.Services(ns).List(labels.Everything())
		return int64(len(l)), err
	case schema.GroupResource{Resource: "persistentvolumeclaims"}:
		l, err := c.pvcs.PersistentVolumeClaims(ns).List(labels.Everything())
		return int64(len(l)), err
	case schema.GroupResource{Resource: "resourcequotas"}:
		l, err := c.quotas.ResourceQuotas(ns).List(labels.Everything())
		return int64(len(l)), err
	}
	gvr := gr.WithVersion("v1")
	if gr.Group != "" {
		if c.resolve == nil {
			return 0, fmt.Errorf("no discovery to find %s", gr)
		}
		var err error
		if gvr, err = c.resolve(gr); err != nil {
			return 0, err
		}
	}
	il, err := c.track(ctx, gvr)
	if err != nil {
		return 0, err
	}
	l, err := il.lister.ByNamespace(ns).List(labels.Everything())
	return int64(len(l)), err
}

// track returns the synced metadata informer for gvr, starting it (with a
// handler that queues the namespace's quotas) the first time.
func (c *Controller) track(ctx context.Context, gvr schema.GroupVersionResource) (informerLister, error) {
	c.mu.Lock()
	il, ok := c.counted[gvr]
	if !ok {
		if c.metaInformers == nil || c.stop == nil {
			c.mu.Unlock()
			return il, fmt.Errorf("no metadata informers to count %s", gvr)
		}
		gi := c.metaInformers.ForResource(gvr)
		il = informerLister{informer: gi.Informer(), lister: gi.Lister()}
		if _, err := il.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    c.growNamespaceOf,
			DeleteFunc: c.enqueueNamespaceOf,
		}); err != nil {
			c.mu.Unlock()
			return il, err
		}
		c.counted[gvr] = il
		c.metaInformers.Start(c.stop)
	}
	c.mu.Unlock()
	if !il.informer.HasSynced() {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if !cache.WaitForCacheSync(wctx.Done(), il.informer.HasSynced) {
			return il, fmt.Errorf("informer for %s did not sync", gvr)
		}
	}
	return il, nil
}

var _ controller.Controller = &Controller{}
