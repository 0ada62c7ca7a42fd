package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/cri"
)

// podWorkers is how many pods sync at once. A sync mostly waits on the
// runtime (CNI, shim and runc execs), so a burst of pods needs many in
// flight to keep the CPUs busy; upstream runs one worker per pod.
const podWorkers = 32

// Kubelet runs the pods bound to one node. Create it with New, then Run it.
type Kubelet struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{}
	rt    *cri.Client
	now   func() time.Time
	// probes holds the probe workers and their results.
	probes *probes
	// images pulls images (images.go); made on first use.
	images     *imageManager
	imagesOnce sync.Once
	// ctx is Run's context, which outlives any one sync.
	ctx context.Context

	podLister corelisters.PodLister
	queue     workqueue.TypedRateLimitingInterface[string]

	// runtimeVersion is "<name>://<version>" from CRI Version.
	runtimeVersion string
	nodeIP         string
	podCIDR        string
	// port is the kubelet API's, posted in node.status.daemonEndpoints.
	port int32

	mu sync.Mutex
	// keys maps a pod UID to its namespace/name key, for runtime events.
	keys map[string]string
	// seen is the last relisted state of each container, by container id.
	seen map[string]string
	// dnsWarned holds the UIDs of pods whose DNS warnings were posted.
	dnsWarned sync.Map
	// tokens are the pods' projected service account tokens (tokens.go).
	tokens tokenCache
	// shims names the containerd shim groups of new sandboxes (shimgroups.go).
	shims *shimGroupSet
	// objects watches what pods' volumes and variables read (objectwatch.go);
	// nil outside Run (tests read with GETs).
	objects *objectWatch
}

// New validates cfg and returns a kubelet; nothing starts until Run.
func New(cfg Config) (*Kubelet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	var shims *shimGroupSet // nil: no shim groups
	if !cfg.DisableShimGroups {
		shims = newShimGroupSet(time.Now())
		if a, ok := strings.CutPrefix(cfg.RuntimeEndpoint, "unix://"); ok {
			shims.address = a
		}
		shims.startDir = cfg.ShimStartDir
	}
	return &Kubelet{
		cfg: cfg, log: cfg.Logger.With("component", "kubelet", "node", cfg.NodeName),
		ready: make(chan struct{}), now: time.Now, probes: newProbes(), shims: shims,
		keys: map[string]string{}, seen: map[string]string{},
	}, nil
}

// runCtx is Run's context (ctx in tests, which do not Run).
func (k *Kubelet) runCtx(ctx context.Context) context.Context {
	if k.ctx != nil {
		return k.ctx
	}
	return ctx
}

// Ready is closed once the node is registered, its pod network configured
// and the pod informer synced.
func (k *Kubelet) Ready() <-chan struct{} { return k.ready }

// Run registers the node and runs its pods until ctx ends. Containers keep
// running when it returns; a new Run adopts them.
func (k *Kubelet) Run(ctx context.Context) error {
	rt, err := cri.Dial(k.cfg.RuntimeEndpoint, 0)
	if err != nil {
		return err
	}
	defer rt.Close()
	k.rt, k.ctx = rt, ctx
	k.objects = newObjectWatch(k.cfg.Client)
	defer k.objects.stopAll()
	v, err := rt.Version(ctx)
	if err != nil {
		return fmt.Errorf("kubelet: runtime: %w", err)
	}
	k.runtimeVersion = v.RuntimeName + "://" + v.RuntimeVersion
	if k.nodeIP, err = nodeIP(k.cfg.NodeIP); err != nil {
		return err
	}
	waitServer, err := k.startServer(ctx)
	if err != nil {
		return err
	}
	defer waitServer()
	if err := k.registerNode(ctx); err != nil {
		return err
	}
	heartbeatDone := make(chan struct{})
	go func() { defer close(heartbeatDone); k.heartbeat(ctx) }()
	defer func() { <-heartbeatDone }()

	cidr, err := k.waitPodCIDR(ctx)
	if err != nil {
		return err
	}
	k.podCIDR = cidr
	if err := k.setupNetwork(ctx, cidr); err != nil {
		return err
	}
	// The network is ready now: say so at once rather than at the next
	// heartbeat, so the not-ready taint goes.
	if nd, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{}); err != nil {
		k.log.Warn("post ready status", "err", err)
	} else if err := k.postStatus(ctx, nd); err != nil {
		k.log.Warn("post ready status", "err", err)
	}

	factory := informers.NewSharedInformerFactoryWithOptions(k.cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName).String()
		}))
	podInformer := factory.Core().V1().Pods()
	k.podLister = podInformer.Lister()
	k.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 10*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "kubelet-pods"})
	defer k.queue.ShutDown()
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: k.enqueue,
		UpdateFunc: func(old, obj interface{}) {
			if !statusOnlyUpdate(old, obj) {
				k.enqueue(obj)
			}
		},
		DeleteFunc: k.enqueue,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		return nil
	}
	var wg sync.WaitGroup
	for range podWorkers {
		wg.Add(1)
		go func() { defer wg.Done(); k.worker(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); k.relist(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); k.cleanLocalPath(ctx) }()
	k.waitSchedulable(ctx)
	k.log.Info("kubelet ready", "podCIDR", cidr, "runtime", k.runtimeVersion, "nodeIP", k.nodeIP)
	close(k.ready)
	<-ctx.Done()
	k.queue.ShutDown()
	wg.Wait()
	return nil
}

func (k *Kubelet) enqueue(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := p.Namespace + "/" + p.Name
	k.mu.Lock()
	k.keys[string(p.UID)] = key
	k.mu.Unlock()
	k.queue.Add(key)
}

// statusOnlyUpdate reports whether a pod update changed nothing the
// kubelet acts on: only its status (mostly the kubelet's own write), and not
// to a terminal phase. As upstream's pod config, such an update does not
// sync the pod again; the runtime's events (relist) and the pod's spec do.
func statusOnlyUpdate(oldObj, newObj interface{}) bool {
	o, ok1 := oldObj.(*corev1.Pod)
	n, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 || o.UID != n.UID || terminal(n) != terminal(o) {
		return false
	}
	return apiequality.Semantic.DeepEqual(o.Spec, n.Spec) &&
		apiequality.Semantic.DeepEqual(o.Labels, n.Labels) &&
		apiequality.Semantic.DeepEqual(o.Annotations, n.Annotations) &&
		apiequality.Semantic.DeepEqual(o.DeletionTimestamp, n.DeletionTimestamp) &&
		apiequality.Semantic.DeepEqual(o.DeletionGracePeriodSeconds, n.DeletionGracePeriodSeconds) &&
		apiequality.Semantic.DeepEqual(o.Finalizers, n.Finalizers)
}

func (k *Kubelet) worker(ctx context.Context) {
	for {
		key, quit := k.queue.Get()
		if quit {
			return
		}
		err := k.syncPod(ctx, key)
		switch {
		case err == nil:
			k.queue.Forget(key)
		case ctx.Err() != nil:
		default:
			k.log.Warn("sync pod failed, retrying", "pod", key, "err", err)
			k.queue.AddRateLimited(key)
		}
		k.queue.Done(key)
	}
}

// observed records the running containers a sync has just read, so that
// the next relist does not queue the pod again for the containers that sync
// started (a change after the read still differs and queues it). Other
// states are left to the relist: an exited container needs a sync that acts
// on it (restart, phase).
func (k *Kubelet) observed(st *podState) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, l := range st.containers {
		for _, c := range l {
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				k.seen[c.Id] = c.State.String()
			}
		}
	}
}

// relist is the kubelet's PLEG: it reads all container states from the
// runtime every Relist period and queues the pods whose containers changed,
// and removes sandboxes of pods that no longer exist.
func (k *Kubelet) relist(ctx context.Context) {
	t := time.NewTicker(k.cfg.Relist)
	defer t.Stop()
	gc := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cs, err := k.rt.ListContainers(ctx, nil)
		if err != nil {
			k.log.Warn("relist containers", "err", err)
			continue
		}
		now := make(map[string]string, len(cs))
		var changed []string
		k.mu.Lock()
		for _, c := range cs {
			st := c.State.String()
			now[c.Id] = st
			// A created container is one a sync is starting right now (a
			// failed start requeues its pod itself): only the state it
			// goes on to queues the pod.
			if k.seen[c.Id] != st && c.State != runtimeapi.ContainerState_CONTAINER_CREATED {
				if key := k.keys[c.Labels[labelPodUID]]; key != "" {
					changed = append(changed, key)
				}
			}
		}
		k.seen = now
		k.mu.Unlock()
		for _, key := range changed {
			k.queue.Add(key)
		}
		if gc++; gc%10 == 0 {
			k.removeOrphans(ctx)
		}
	}
}
