package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
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
}

// Validate rejects an incomplete config.
func (c *Config) Validate() error {
	if c.Client == nil {
		return errors.New("scheduler: no client")
	}
	return nil
}

// Scheduler binds pending pods to nodes.
type Scheduler struct {
	cfg        Config
	log        *slog.Logger
	preFilters []framework.PreFilterPlugin
	filters    []framework.FilterPlugin
	scorers    []framework.WeightedScorer
	queue      *queue
	pods       listerscorev1.PodLister
	listers    framework.Listers
	recorder   record.EventRecorder
	ready      chan struct{}

	cache *nodeCache
	binds chan struct{} // bounds concurrent bind calls
}

// DefaultPlugins are the plugins enabled by default, in upstream's filter
// order and with upstream's default score weights.
func DefaultPlugins() framework.Profile {
	return framework.Profile{
		Filters: []framework.FilterPlugin{
			nodename.NodeName{}, nodeunschedulable.NodeUnschedulable{}, tainttoleration.TaintToleration{},
			nodeaffinity.NodeAffinity{}, nodeports.NodePorts{}, noderesources.Fit{},
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
	s := &Scheduler{cfg: cfg, log: log, filters: prof.Filters, scorers: prof.Scorers, queue: newQueue(), ready: make(chan struct{}),
		cache: newNodeCache(), binds: make(chan struct{}, 64)}
	for _, f := range prof.Filters {
		if pf, ok := f.(framework.PreFilterPlugin); ok {
			s.preFilters = append(s.preFilters, pf)
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
	factory := informers.NewSharedInformerFactory(s.cfg.Client, 0)
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	nsInf := factory.Core().V1().Namespaces()
	s.pods = podInf.Lister()
	// Namespaces for namespaceSelector in pod affinity; the rest for the
	// default topology spread selector.
	s.listers = framework.Listers{
		Namespaces:             nsInf.Lister(),
		Services:               factory.Core().V1().Services().Lister(),
		ReplicationControllers: factory.Core().V1().ReplicationControllers().Lister(),
		ReplicaSets:            factory.Apps().V1().ReplicaSets().Lister(),
		StatefulSets:           factory.Apps().V1().StatefulSets().Lister(),
	}
	_, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			p := obj.(*corev1.Pod)
			if !s.account(p) && p.Spec.NodeName != "" {
				s.queue.WakeFor(podEventPlugins...) // a new pod in its domains
			}
			if s.responsible(p) {
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
				// A status write (ours included) is not a reason to retry.
				if old.Generation != p.Generation || !labels.Equals(old.Labels, p.Labels) {
					s.queue.Add(entryFor(p))
				}
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
			s.cache.remove(key(p))
			if p.Spec.NodeName != "" {
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
		UpdateFunc: func(_, obj interface{}) {
			s.cache.setNode(obj.(*corev1.Node))
			s.queue.Wake()
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
	host, diagnosis, total, rejectors := s.pick(ctx, pod)
	if host == "" {
		msg := diagnosis.Message(total)
		if total == 0 {
			msg = "0/0 nodes are available: no nodes available to schedule pods."
		}
		s.markUnschedulable(ctx, pod, msg)
		s.queue.Park(e, rejectors)
		return
	}
	// Assume the pod on the node now, so the next cycle counts it, and bind
	// in the background.
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = host
	s.cache.place(assumed)
	s.binds <- struct{}{}
	go func() {
		defer func() { <-s.binds }()
		s.bind(ctx, pod, host, e)
	}()
}

func (s *Scheduler) bind(ctx context.Context, pod *corev1.Pod, host string, e entry) {
	err := s.cfg.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: host},
	}, metav1.CreateOptions{})
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
}

// feasibleToFind is how many fitting nodes a cycle looks for before it
// stops filtering, as upstream's adaptive percentageOfNodesToScore: all of
// a small cluster, a shrinking share of a big one, never fewer than 100.
func feasibleToFind(nodes int) int {
	if nodes <= 100 {
		return nodes
	}
	pct := 50 - nodes/125
	if pct < 5 {
		pct = 5
	}
	n := nodes * pct / 100
	if n < 100 {
		n = 100
	}
	return n
}

// pick runs the pre-filters over the whole snapshot, the filters
// (round-robin from where the last cycle stopped) and the scores, and
// returns the best node, why others failed, how many nodes there are and
// which plugins rejected some node.
func (s *Scheduler) pick(ctx context.Context, pod *corev1.Pod) (string, framework.Diagnosis, int, map[string]bool) {
	c := s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	total := len(c.order)
	diagnosis := framework.Diagnosis{}
	rejectors := map[string]bool{}
	state := framework.NewCycleState()
	snap := c.snapshot(s.listers)
	for _, pf := range s.preFilters {
		st := pf.PreFilter(ctx, state, pod, snap)
		switch {
		case st.IsSkip():
			state.SkipFilter(pf.Name())
		case !st.IsSuccess():
			// Rejects the pod everywhere.
			for _, n := range c.list {
				diagnosis[n.Node.Name] = st
			}
			rejectors[pf.Name()] = true
			return "", diagnosis, total, rejectors
		}
	}
	filters := make([]framework.FilterPlugin, 0, len(s.filters))
	for _, f := range s.filters {
		if !state.FilterSkipped(f.Name()) {
			filters = append(filters, f)
		}
	}
	want := feasibleToFind(total)
	var feasible []*framework.NodeInfo
	checked := 0
	for ; checked < total && len(feasible) < want; checked++ {
		n := c.list[(c.next+checked)%total]
		ok := true
		for _, f := range filters {
			if st := f.Filter(ctx, state, pod, n); !st.IsSuccess() {
				diagnosis[n.Node.Name] = st
				rejectors[f.Name()] = true
				ok = false
				break
			}
		}
		if ok {
			feasible = append(feasible, n)
		}
	}
	if total > 0 {
		c.next = (c.next + checked) % total
	}
	if len(feasible) == 0 {
		return "", diagnosis, total, rejectors
	}
	return s.score(ctx, state, pod, snap, feasible), diagnosis, total, rejectors
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

// markUnschedulable sets PodScheduled=False with the reason, once per
// distinct message, and records a FailedScheduling event.
func (s *Scheduler) markUnschedulable(ctx context.Context, pod *corev1.Pod, msg string) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == msg {
			return
		}
	}
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", msg)
	patch, _ := json.Marshal(map[string]interface{}{"status": map[string]interface{}{"conditions": []interface{}{map[string]interface{}{
		"type": corev1.PodScheduled, "status": corev1.ConditionFalse, "reason": corev1.PodReasonUnschedulable,
		"message": msg, "lastTransitionTime": metav1.Now(),
	}}}})
	_, err := s.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil && !apierrors.IsNotFound(err) {
		s.log.Warn("record unschedulable", "pod", key(pod), "err", err)
	}
}

func cutKey(k string) (string, string, error) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:], nil
		}
	}
	return "", k, fmt.Errorf("bad key %q", k)
}

// NewFromKubeconfig builds a leader-electing scheduler that reaches the
// cluster with the credentials in a kubeconfig file.
func NewFromKubeconfig(path, schedulerName, identity string, log *slog.Logger) (*Scheduler, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "skiff-scheduler"
	rc.QPS, rc.Burst = 1000, 2000
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return New(Config{Client: cs, SchedulerName: schedulerName, LeaderElect: true, Identity: identity, Logger: log})
}
