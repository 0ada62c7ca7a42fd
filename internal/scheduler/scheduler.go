package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listerspolicyv1 "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/api/scheme"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/imagelocality"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/interpodaffinity"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeaffinity"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodename"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeports"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/noderesources"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeunschedulable"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/podtopologyspread"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/tainttoleration"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/volumebinding"
)

// Config configures a scheduler.
type Config struct {
	Client kubernetes.Interface
	// SchedulerName is the spec.schedulerName this scheduler serves.
	SchedulerName string
	// LeaderElect: only the holder of the kube-system/<SchedulerName>
	// Lease schedules, so several servers run one active scheduler.
	LeaderElect bool
	// Identity names this candidate in the Lease (default: host name and
	// a random suffix).
	Identity string
	Logger   *slog.Logger
	// Plugins replaces DefaultPlugins() (from a --config file).
	Plugins *framework.Profile
	// Informers, if set, is a factory shared with other components of the
	// same process (skiff server), so one pod cache serves them all; it
	// must use a transform that drops managedFields. Nil: a private one.
	Informers informers.SharedInformerFactory
	// PercentageOfNodesToScore is the share of nodes a cycle filters
	// before it scores what it found (0: upstream's adaptive default).
	PercentageOfNodesToScore int32
	// DisablePreemption turns the DefaultPreemption PostFilter off.
	DisablePreemption bool
	// FailureQPS and FailureBurst pace the records of pods that fit
	// nowhere (PodScheduled=False and a FailedScheduling event, one token
	// per pod), written in the background; 0: upstream's client defaults,
	// 50 and 100. Binds are not paced by them.
	FailureQPS   float32
	FailureBurst int
}

// Validate rejects an incomplete config.
func (c *Config) Validate() error {
	if c.Client == nil {
		return errors.New("scheduler: no client")
	}
	if c.PercentageOfNodesToScore < 0 || c.PercentageOfNodesToScore > 100 {
		return fmt.Errorf("scheduler: percentageOfNodesToScore %d not in 0..100", c.PercentageOfNodesToScore)
	}
	if c.FailureQPS < 0 || c.FailureBurst < 0 {
		return fmt.Errorf("scheduler: failure write QPS %v and burst %d must not be negative", c.FailureQPS, c.FailureBurst)
	}
	return nil
}

// Scheduler binds pending pods to nodes.
type Scheduler struct {
	cfg        Config
	log        *slog.Logger
	preFilters []framework.PreFilterPlugin
	// exts are the pre-filters that keep their state in step with
	// what-ifs (preemption, nominated pods).
	exts     []framework.PreFilterExtensions
	filters  []framework.FilterPlugin
	preBinds []framework.PreBindPlugin
	scorers  []framework.WeightedScorer
	queue    *queue
	pods     listerscorev1.PodLister
	pdbs     listerspolicyv1.PodDisruptionBudgetLister
	listers  framework.Listers
	recorder record.EventRecorder
	ready    chan struct{}
	// failures writes the records of pods that fit nowhere.
	failures *failureWriter

	cache *nodeCache
	binds chan struct{} // bounds concurrent bind calls

	termMu sync.Mutex // held while a leadership term schedules
}

// DefaultPlugins are the plugins enabled by default, in upstream's filter
// order and with upstream's default score weights.
func DefaultPlugins() framework.Profile {
	return framework.Profile{
		Filters: []framework.FilterPlugin{
			nodename.NodeName{}, nodeunschedulable.NodeUnschedulable{}, tainttoleration.TaintToleration{},
			nodeaffinity.NodeAffinity{}, nodeports.NodePorts{}, noderesources.Fit{}, volumebinding.VolumeBinding{},
			podtopologyspread.New(), interpodaffinity.New(),
		},
		Scorers: []framework.WeightedScorer{
			{ScorePlugin: tainttoleration.TaintToleration{}, Weight: 3},
			{ScorePlugin: nodeaffinity.NodeAffinity{}, Weight: 2},
			{ScorePlugin: noderesources.Fit{}, Weight: 1},
			{ScorePlugin: noderesources.Balanced{}, Weight: 1},
			{ScorePlugin: imagelocality.ImageLocality{}, Weight: 1},
			{ScorePlugin: podtopologyspread.New(), Weight: 2},
			{ScorePlugin: interpodaffinity.New(), Weight: 2},
		},
	}
}

// podEventPlugins are the plugins whose rejections an assigned pod's
// arrival or label change may cure (upstream's queueing hints, coarsely).
var podEventPlugins = []string{interpodaffinity.Name, podtopologyspread.Name}

// New builds a scheduler; Run starts it.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SchedulerName == "" {
		cfg.SchedulerName = corev1.DefaultSchedulerName
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	prof := DefaultPlugins()
	if cfg.Plugins != nil {
		prof = *cfg.Plugins
	}
	s := &Scheduler{cfg: cfg, log: log, filters: prof.Filters, scorers: prof.Scorers, queue: newQueue(), ready: make(chan struct{}),
		cache: newNodeCache(), binds: make(chan struct{}, 64)}
	qps, burst := cfg.FailureQPS, cfg.FailureBurst
	if qps == 0 {
		qps = defaultFailureQPS
	}
	if burst == 0 {
		burst = defaultFailureBurst
	}
	s.failures = newFailureWriter(qps, burst, s.writeFailure)
	for _, f := range prof.Filters {
		if pf, ok := f.(framework.PreFilterPlugin); ok {
			s.preFilters = append(s.preFilters, pf)
		}
		if ext, ok := f.(framework.PreFilterExtensions); ok {
			s.exts = append(s.exts, ext)
		}
		if pb, ok := f.(framework.PreBindPlugin); ok {
			s.preBinds = append(s.preBinds, pb)
		}
	}
	return s, nil
}

// Ready is closed once the informers have synced.
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

func key(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func (s *Scheduler) responsible(p *corev1.Pod) bool {
	return p.Spec.NodeName == "" && p.Spec.SchedulerName == s.cfg.SchedulerName && p.DeletionTimestamp == nil &&
		p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func entryFor(p *corev1.Pod) entry {
	var prio int32
	if p.Spec.Priority != nil {
		prio = *p.Spec.Priority
	}
	return entry{key: key(p), priority: prio, created: p.CreationTimestamp.Time}
}

// Run schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	// managedFields are never read here and are a large share of a cached
	// pod's memory.
	factory := s.cfg.Informers
	if factory == nil {
		factory = informers.NewSharedInformerFactoryWithOptions(s.cfg.Client, 0, informers.WithTransform(trimManagedFields))
	}
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	nsInf := factory.Core().V1().Namespaces()
	s.pods = podInf.Lister()
	if !s.cfg.DisablePreemption {
		s.pdbs = factory.Policy().V1().PodDisruptionBudgets().Lister()
	}
	// Namespaces for namespaceSelector in pod affinity; the rest for the
	// default topology spread selector.
	s.listers = framework.Listers{
		Namespaces:             nsInf.Lister(),
		Services:               factory.Core().V1().Services().Lister(),
		ReplicationControllers: factory.Core().V1().ReplicationControllers().Lister(),
		ReplicaSets:            factory.Apps().V1().ReplicaSets().Lister(),
		StatefulSets:           factory.Apps().V1().StatefulSets().Lister(),
	}
	if len(s.preBinds) > 0 {
		if err := s.watchVolumes(factory); err != nil {
			return err
		}
	}
	_, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			p := obj.(*corev1.Pod)
			if !s.account(p) && p.Spec.NodeName != "" {
				s.queue.WakeFor(podEventPlugins...) // a new pod in its domains
			}
			if s.responsible(p) {
				if p.Status.NominatedNodeName != "" {
					s.cache.nominateFromInformer(p)
				}
				s.queue.Add(entryFor(p))
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			p := newObj.(*corev1.Pod)
			old := oldObj.(*corev1.Pod)
			switch {
			case s.account(p):
				s.queue.Wake() // a pod finished: its resources are free
			case p.Spec.NodeName != "" && (old.Spec.NodeName == "" || !labels.Equals(old.Labels, p.Labels)):
				s.queue.WakeFor(podEventPlugins...) // bound, or relabelled
			}
			if s.responsible(p) {
				switch {
				case p.Status.NominatedNodeName != "":
					s.cache.nominateFromInformer(p)
				case old.Status.NominatedNodeName != "" && s.cache.unnominate(key(p)):
					s.queue.Wake() // its reservation is gone
				}
				// A status write (ours included) is not a reason to retry.
				if old.Generation != p.Generation || !labels.Equals(old.Labels, p.Labels) {
					s.queue.Add(entryFor(p))
				}
			} else if s.cache.unnominate(key(p)) {
				s.queue.Wake() // bound, or terminating: its reservation is gone
			}
		},
		DeleteFunc: func(obj interface{}) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			p, ok := obj.(*corev1.Pod)
			if !ok {
				return
			}
			s.queue.Delete(key(p))
			s.failures.Forget(key(p))
			s.cache.remove(key(p))
			s.cache.mu.Lock()
			unnominated := s.cache.unnominateLocked(key(p))
			s.cache.mu.Unlock()
			if unnominated || p.Spec.NodeName != "" {
				s.queue.Wake() // resources were freed
			}
		},
	})
	if err != nil {
		return err
	}
	_, err = nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(interface{}) { s.queue.WakeFor(interpodaffinity.Name) },
		UpdateFunc: func(oldObj, newObj interface{}) {
			if !labels.Equals(oldObj.(*corev1.Namespace).Labels, newObj.(*corev1.Namespace).Labels) {
				s.queue.WakeFor(interpodaffinity.Name) // namespaceSelector matches may change
			}
		},
	})
	if err != nil {
		return err
	}
	_, err = nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			s.cache.setNode(obj.(*corev1.Node))
			s.queue.Wake()
		},
		UpdateFunc: func(oldObj, obj interface{}) {
			s.cache.setNode(obj.(*corev1.Node))
			// A heartbeat (conditions, images) cannot make a pod fit;
			// waking every parked pod for it would busy-loop large clusters.
			if nodeFitChanged(oldObj.(*corev1.Node), obj.(*corev1.Node)) {
				s.queue.Wake()
			}
		},
		DeleteFunc: func(obj interface{}) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				s.cache.deleteNode(n.Name)
			}
		},
	})
	if err != nil {
		return err
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.cfg.Client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	s.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: s.cfg.SchedulerName})

	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("scheduler: %v informer did not sync: %w", typ, ctx.Err())
		}
	}
	close(s.ready)
	go func() {
		<-ctx.Done()
		s.queue.Close()
	}()
	// Parked pods are retried now and then even without a cluster event,
	// as upstream flushes its unschedulable queue.
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.cache.prune(func(k string) bool {
					ns, name, _ := cutKey(k)
					p, err := s.pods.Pods(ns).Get(name)
					return err == nil && s.responsible(p)
				})
				s.queue.Wake()
			}
		}
	}()
	if !s.cfg.LeaderElect {
		s.loop(ctx)
		return nil
	}
	return s.runElected(ctx)
}

// loop schedules until ctx ends.
func (s *Scheduler) loop(ctx context.Context) {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.failures.Run(wctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	for {
		e, ok := s.queue.PopUntil(ctx.Done())
		if !ok {
			return
		}
		s.scheduleOne(ctx, e)
	}
}

// Lease timing as kube-scheduler's defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// runElected schedules only while holding the Lease, and campaigns again
// after losing it, until ctx ends.
func (s *Scheduler) runElected(ctx context.Context) error {
	id := s.cfg.Identity
	if id == "" {
		host, _ := os.Hostname()
		id = host + "_" + string(uuid.NewUUID())
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: s.cfg.SchedulerName},
		Client:     s.cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			ReleaseOnCancel: true, Name: s.cfg.SchedulerName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					// client-go runs this in a goroutine and does not wait
					// for it: the previous term's loop must end first, or
					// two loops would pop and bind at once.
					s.termMu.Lock()
					defer s.termMu.Unlock()
					if lctx.Err() != nil {
						return
					}
					s.log.Info("scheduler is leading", "identity", id)
					s.queue.Wake()
					s.loop(lctx)
				},
				OnStoppedLeading: func() { s.log.Info("scheduler stopped leading", "identity", id) },
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
	}
	return nil
}

// account keeps the node cache in step with a pod from the informer; it
// reports whether a placed pod finished (freeing its resources).
func (s *Scheduler) account(p *corev1.Pod) bool {
	switch {
	case p.Spec.NodeName == "":
		return false
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		s.cache.remove(key(p))
		return true
	default:
		s.cache.place(p)
		return false
	}
}

// scheduleOne places one pod or records why it cannot be placed.
func (s *Scheduler) scheduleOne(ctx context.Context, e entry) {
	ns, name, _ := cutKey(e.key)
	pod, err := s.pods.Pods(ns).Get(name)
	if err != nil || !s.responsible(pod) {
		return
	}
	r := s.pick(ctx, pod)
	host := r.host
	if host == "" {
		msg := r.diagnosis.Message(r.total)
		if r.total == 0 {
			msg = "0/0 nodes are available: no nodes available to schedule pods."
		}
		nominate := ""
		if r.preemption != nil {
			nominate = r.preemption.node
		}
		// The nomination is written before any victim is deleted, so the
		// room it frees is seen as reserved.
		s.markUnschedulable(ctx, pod, msg, nominate)
		if r.preemption != nil {
			s.executePreemption(ctx, pod, r.preemption, e)
		}
		s.queue.Park(e, r.rejectors)
		return
	}
	// Assume the pod on the node now, so the next cycle counts it, and bind
	// in the background.
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = host
	s.cache.assume(assumed)
	s.binds <- struct{}{}
	go func() {
		defer func() { <-s.binds }()
		s.bind(ctx, pod, host, e)
	}()
}

func (s *Scheduler) bind(ctx context.Context, pod *corev1.Pod, host string, e entry) {
	err := s.preBind(ctx, pod, host)
	if err == nil {
		err = s.cfg.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: host},
		}, metav1.CreateOptions{})
	}
	if err != nil {
		s.cache.remove(e.key)
		if apierrors.IsNotFound(err) || ctx.Err() != nil {
			return
		}
		s.log.Warn("bind failed", "pod", e.key, "node", host, "err", err)
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
		time.AfterFunc(time.Second, func() { s.queue.Add(e) })
		return
	}
	s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, host)
	if nn := pod.Status.NominatedNodeName; nn != "" && nn != host {
		// Bound elsewhere than it was nominated to: the nomination is void.
		if err := s.patchNomination(ctx, pod, ""); err != nil {
			s.log.Warn("clear nomination", "pod", e.key, "err", err)
		}
	}
}

// feasibleToFind is how many fitting nodes a cycle looks for before it
// stops filtering, as upstream's percentageOfNodesToScore: all of a small
// cluster; of a big one the configured share or, with 0, an adaptive
// share shrinking with its size; never fewer than 100.
func feasibleToFind(nodes int, percentage int32) int {
	if nodes <= 100 || percentage >= 100 {
		return nodes
	}
	pct := int(percentage)
	if pct == 0 {
		pct = max(50-nodes/125, 5)
	}
	n := nodes * pct / 100
	if n < 100 {
		n = 100
	}
	return n
}

// cycle is one scheduling attempt: the pod, the plugins' state, the
// snapshot and why nodes were rejected.
type cycle struct {
	pod     *corev1.Pod
	state   *framework.CycleState
	snap    *framework.Snapshot
	filters []framework.FilterPlugin        // those not skipped this cycle
	exts    []framework.PreFilterExtensions // likewise
	total   int
	// diagnosis has a status per rejected node; rejectors the plugins
	// that rejected some node.
	diagnosis       framework.Diagnosis
	rejectors       map[string]bool
	preFilterFailed bool
}

// result is what a cycle decided.
type result struct {
	host       string
	diagnosis  framework.Diagnosis
	total      int
	rejectors  map[string]bool
	preemption *preemption // when host is "": the pod was nominated to a node
}

// runFilters runs the cycle's filters on n with state, stopping at the
// first that rejects it; it returns that status and plugin.
func (cy *cycle) runFilters(ctx context.Context, state *framework.CycleState, n *framework.NodeInfo) (*framework.Status, string) {
	for _, f := range cy.filters {
		if st := f.Filter(ctx, state, cy.pod, n); !st.IsSuccess() {
			return st, f.Name()
		}
	}
	return nil, ""
}

// filterNode runs the filters on n counting the pods nominated to it that
// the cycle's pod must leave room for, and then (if any) without them, as
// upstream's RunFilterPluginsWithNominatedPods: the pod must fit either
// way, as the nominated pods may bind elsewhere. The caller holds the
// cache lock.
func (s *Scheduler) filterNode(ctx context.Context, cy *cycle, state *framework.CycleState, n *framework.NodeInfo) (*framework.Status, string) {
	if len(s.cache.nominated) == 0 {
		return cy.runFilters(ctx, state, n) // the common case: no lookups
	}
	nominated := s.cache.nominatedFor(cy.pod, n.Node.Name)
	if len(nominated) == 0 {
		return cy.runFilters(ctx, state, n)
	}
	withState, withNode := state.Clone(), n.Clone()
	for _, p := range nominated {
		withNode.AddPod(p)
		for _, ext := range cy.exts {
			ext.AddPod(ctx, withState, cy.pod, p, withNode)
		}
	}
	if st, name := cy.runFilters(ctx, withState, withNode); !st.IsSuccess() {
		return st, name
	}
	return cy.runFilters(ctx, state, n)
}

// pick runs the pre-filters over the whole snapshot, tries the node the
// pod is nominated to (if any), then the filters (round-robin from where
// the last cycle stopped) and the scores, and returns the best node; when
// none fits, it tries preemption.
func (s *Scheduler) pick(ctx context.Context, pod *corev1.Pod) result {
	c := s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	cy := &cycle{pod: pod, state: framework.NewCycleState(), snap: c.snapshot(s.listers), total: len(c.order),
		diagnosis: framework.Diagnosis{}, rejectors: map[string]bool{}}
	res := func(host string) result {
		return result{host: host, diagnosis: cy.diagnosis, total: cy.total, rejectors: cy.rejectors}
	}
	for _, pf := range s.preFilters {
		st := pf.PreFilter(ctx, cy.state, pod, cy.snap)
		switch {
		case st.IsSkip():
			cy.state.SkipFilter(pf.Name())
		case !st.IsSuccess():
			// Rejects the pod everywhere.
			for _, n := range c.list {
				cy.diagnosis[n.Node.Name] = st
			}
			cy.rejectors[pf.Name()] = true
			return res("")
		}
	}
	cy.filters = make([]framework.FilterPlugin, 0, len(s.filters))
	for _, f := range s.filters {
		if !cy.state.FilterSkipped(f.Name()) {
			cy.filters = append(cy.filters, f)
		}
	}
	for _, ext := range s.exts {
		if !cy.state.FilterSkipped(ext.Name()) {
			cy.exts = append(cy.exts, ext)
		}
	}
	// A nominated pod goes to its node if it fits there now.
	if nn := c.nominatedNode(key(pod)); nn != "" || pod.Status.NominatedNodeName != "" {
		if nn == "" {
			nn = pod.Status.NominatedNodeName
		}
		if n := c.nodes[nn]; n != nil {
			if st, _ := s.filterNode(ctx, cy, cy.state, n); st.IsSuccess() {
				return res(nn)
			}
		}
	}
	total := cy.total
	want := feasibleToFind(total, s.cfg.PercentageOfNodesToScore)
	var feasible []*framework.NodeInfo
	checked := 0
	for ; checked < total && len(feasible) < want; checked++ {
		n := c.list[(c.next+checked)%total]
		if st, name := s.filterNode(ctx, cy, cy.state, n); !st.IsSuccess() {
			cy.diagnosis[n.Node.Name] = st
			cy.rejectors[name] = true
			continue
		}
		feasible = append(feasible, n)
	}
	if total > 0 {
		c.next = (c.next + checked) % total
	}
	if len(feasible) == 0 {
		r := res("")
		if !s.cfg.DisablePreemption {
			r.preemption = s.preempt(ctx, cy)
		}
		return r
	}
	return res(s.score(ctx, cy.state, pod, cy.snap, feasible))
}

// score sums the weighted, normalized plugin scores of the feasible nodes
// and returns the best (the first in round-robin order on a tie).
func (s *Scheduler) score(ctx context.Context, state *framework.CycleState, pod *corev1.Pod, snap *framework.Snapshot, feasible []*framework.NodeInfo) string {
	if len(feasible) == 1 {
		return feasible[0].Node.Name
	}
	sums := make([]int64, len(feasible))
	scores := make([]framework.NodeScore, len(feasible))
	for _, sc := range s.scorers {
		if pre, ok := sc.ScorePlugin.(framework.PreScorePlugin); ok {
			if st := pre.PreScore(ctx, state, pod, snap, feasible); !st.IsSuccess() {
				continue // Skip, or an error: the plugin adds nothing
			}
		}
		for i, n := range feasible {
			v, st := sc.Score(ctx, state, pod, n)
			if !st.IsSuccess() {
				v = 0
			}
			scores[i] = framework.NodeScore{Name: n.Node.Name, Score: v}
		}
		if norm, ok := sc.ScorePlugin.(framework.ScoreNormalizer); ok {
			if st := norm.NormalizeScore(ctx, state, pod, scores); !st.IsSuccess() {
				continue
			}
		}
		for i := range scores {
			sums[i] += scores[i].Score * sc.Weight
		}
	}
	best := 0
	for i := range sums {
		if sums[i] > sums[best] {
			best = i
		}
	}
	return feasible[best].Node.Name
}

func cutKey(k string) (string, string, error) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:], nil
		}
	}
	return "", k, fmt.Errorf("bad key %q", k)
}

// NewFromKubeconfig builds a scheduler with cfg that reaches the cluster
// with the credentials in a kubeconfig file.
func NewFromKubeconfig(path string, cfg Config) (*Scheduler, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	return NewForConfig(rc, cfg)
}

// NewForConfig builds a scheduler with cfg that reaches the cluster with a
// copy of rc.
func NewForConfig(rc *rest.Config, cfg Config) (*Scheduler, error) {
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "skiff-scheduler"
	rc.QPS, rc.Burst = 1000, 2000
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	cfg.Client = cs
	return New(cfg)
}

// nodeFitChanged reports a node change that can make a parked pod fit:
// allocatable resources, labels, taints or schedulability.
func nodeFitChanged(old, cur *corev1.Node) bool {
	return old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!apiequality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		!labels.Equals(old.Labels, cur.Labels) ||
		!apiequality.Semantic.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable)
}

func trimManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
