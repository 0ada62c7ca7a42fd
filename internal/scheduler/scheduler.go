package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/api/scheme"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeaffinity"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodename"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeports"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/noderesources"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/nodeunschedulable"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/tainttoleration"
)

// Config configures a scheduler.
type Config struct {
	Client kubernetes.Interface
	// SchedulerName is the spec.schedulerName this scheduler serves.
	SchedulerName string
	Logger        *slog.Logger
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
	cfg      Config
	log      *slog.Logger
	filters  []framework.FilterPlugin
	scorers  []framework.ScorePlugin
	queue    *queue
	pods     listerscorev1.PodLister
	nodes    listerscorev1.NodeLister
	recorder record.EventRecorder
	ready    chan struct{}

	mu      sync.Mutex
	assumed map[string]*corev1.Pod // bound by us, not yet seen bound in the informer
}

// DefaultPlugins are the filter and score plugins enabled by default.
func DefaultPlugins() ([]framework.FilterPlugin, []framework.ScorePlugin) {
	return []framework.FilterPlugin{
			nodename.NodeName{}, nodeunschedulable.NodeUnschedulable{}, tainttoleration.TaintToleration{},
			nodeaffinity.NodeAffinity{}, nodeports.NodePorts{}, noderesources.Fit{},
		}, []framework.ScorePlugin{
			tainttoleration.TaintToleration{}, nodeaffinity.NodeAffinity{}, noderesources.Fit{}, noderesources.Balanced{},
		}
}

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
	f, s := DefaultPlugins()
	return &Scheduler{cfg: cfg, log: log, filters: f, scorers: s, queue: newQueue(), ready: make(chan struct{}),
		assumed: map[string]*corev1.Pod{}}, nil
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
	s.pods, s.nodes = podInf.Lister(), nodeInf.Lister()
	_, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			if p := obj.(*corev1.Pod); s.responsible(p) {
				s.queue.Add(entryFor(p))
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			p := newObj.(*corev1.Pod)
			if p.Spec.NodeName != "" {
				s.forget(key(p))
			}
			if s.responsible(p) {
				old := oldObj.(*corev1.Pod)
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
			s.forget(key(p))
			if p.Spec.NodeName != "" {
				s.queue.Wake() // resources were freed
			}
		},
	})
	if err != nil {
		return err
	}
	_, err = nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(interface{}) { s.queue.Wake() },
		UpdateFunc: func(interface{}, interface{}) { s.queue.Wake() },
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
	if !cache.WaitForCacheSync(ctx.Done(), podInf.Informer().HasSynced, nodeInf.Informer().HasSynced) {
		return ctx.Err()
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
	for {
		e, ok := s.queue.Pop()
		if !ok {
			return nil
		}
		s.scheduleOne(ctx, e)
	}
}

func (s *Scheduler) forget(k string) {
	s.mu.Lock()
	delete(s.assumed, k)
	s.mu.Unlock()
}

// snapshot builds NodeInfos from the listers plus assumed pods.
func (s *Scheduler) snapshot() ([]*framework.NodeInfo, error) {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	pods, err := s.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	byNode := map[string][]*corev1.Pod{}
	seen := map[string]bool{}
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
		seen[key(p)] = true
	}
	s.mu.Lock()
	for k, p := range s.assumed {
		if !seen[k] {
			byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
		}
	}
	s.mu.Unlock()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	infos := make([]*framework.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		infos = append(infos, framework.NewNodeInfo(n, byNode[n.Name]...))
	}
	return infos, nil
}

// scheduleOne places one pod or records why it cannot be placed.
func (s *Scheduler) scheduleOne(ctx context.Context, e entry) {
	ns, name, _ := cutKey(e.key)
	pod, err := s.pods.Pods(ns).Get(name)
	if err != nil || !s.responsible(pod) {
		return
	}
	infos, err := s.snapshot()
	if err != nil {
		s.log.Error("scheduler snapshot", "err", err)
		s.queue.Park(e)
		return
	}
	host, diagnosis := s.pick(ctx, pod, infos)
	if host == "" {
		msg := diagnosis.Message(len(infos))
		if len(infos) == 0 {
			msg = "0/0 nodes are available: no nodes available to schedule pods."
		}
		s.markUnschedulable(ctx, pod, msg)
		s.queue.Park(e)
		return
	}
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = host
	s.mu.Lock()
	s.assumed[e.key] = assumed
	s.mu.Unlock()
	err = s.cfg.Client.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: host},
	}, metav1.CreateOptions{})
	if err != nil {
		s.forget(e.key)
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) && pod.DeletionTimestamp != nil {
			return
		}
		s.log.Warn("bind failed", "pod", e.key, "node", host, "err", err)
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
		time.AfterFunc(time.Second, func() { s.queue.Add(e) })
		return
	}
	s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", ns, name, host)
}

// pick runs the filters and scores and returns the best node.
func (s *Scheduler) pick(ctx context.Context, pod *corev1.Pod, infos []*framework.NodeInfo) (string, framework.Diagnosis) {
	diagnosis := framework.Diagnosis{}
	var feasible []*framework.NodeInfo
	for _, n := range infos {
		ok := true
		for _, f := range s.filters {
			if st := f.Filter(ctx, pod, n); !st.IsSuccess() {
				diagnosis[n.Node.Name] = st
				ok = false
				break
			}
		}
		if ok {
			feasible = append(feasible, n)
		}
	}
	if len(feasible) == 0 {
		return "", diagnosis
	}
	best, bestScore := "", int64(-1)
	for _, n := range feasible {
		var total int64
		for _, sc := range s.scorers {
			v, st := sc.Score(ctx, pod, n)
			if st.IsSuccess() {
				total += v
			}
		}
		if total > bestScore {
			best, bestScore = n.Node.Name, total
		}
	}
	return best, diagnosis
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
