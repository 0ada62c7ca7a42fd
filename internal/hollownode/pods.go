package hollownode

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// Pod annotations that script the simulated containers' exit.
const (
	// AnnotationExitAfter is a Go duration: the containers exit that long
	// after they start running.
	AnnotationExitAfter = "hollow.skiff.sh/exit-after"
	// AnnotationExitCode is the exit code they exit with (default 0).
	AnnotationExitCode = "hollow.skiff.sh/exit-code"
)

// podRun is the simulated life of one pod, kept in memory by the worker
// that syncs its key.
type podRun struct {
	uid      types.UID
	node     *node
	ip       string
	pooled   netip.Addr // the pool address held, if ip came from the pool
	started  time.Time  // status.startTime
	runStart time.Time  // the containers' current run began (in the future during back-off)
	restarts int32
	last     *corev1.ContainerStateTerminated // the previous run's end
	exited   bool                             // for good: the pod is terminal
	exitCode int32
	finished time.Time
	stopping time.Time // when the deletion was first seen
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// enqueuePod queues pods bound to one of our nodes; nothing else.
func (n *Nodes) enqueuePod(obj interface{}) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok && n.nodes[p.Spec.NodeName] != nil {
		n.podQueue.Add(podKey(p))
	}
}

// adoptPodIPs reserves the addresses live pods on our nodes already report
// (from an earlier run), before any worker hands out a new one.
func (n *Nodes) adoptPodIPs() {
	pods, _ := n.podLister.List(everything)
	for _, p := range pods {
		if nd := n.nodes[p.Spec.NodeName]; nd != nil && p.Status.PodIP != "" && !terminal(p) {
			n.runFor(p, nd)
		}
	}
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// runFor returns the pod's run, starting one (with an IP) at the first sight
// of the pod, or resuming one from the status an earlier process wrote.
func (n *Nodes) runFor(p *corev1.Pod, nd *node) (*podRun, error) {
	key := podKey(p)
	n.mu.Lock()
	r := n.pods[key]
	n.mu.Unlock()
	if r != nil && r.uid == p.UID {
		return r, nil
	}
	if r != nil {
		n.forget(key) // the name was reused by a new pod
	}
	now := n.now()
	r = &podRun{uid: p.UID, node: nd, started: now, runStart: now}
	if p.Status.StartTime != nil {
		r.started, r.runStart = p.Status.StartTime.Time, p.Status.StartTime.Time
	}
	if len(p.Status.ContainerStatuses) > 0 {
		cs := p.Status.ContainerStatuses[0]
		r.restarts = cs.RestartCount
		if t := cs.LastTerminationState.Terminated; t != nil {
			r.last = t.DeepCopy()
			r.runStart = t.FinishedAt.Add(n.timing.crashBackoff)
		}
		if cs.State.Running != nil {
			r.runStart = cs.State.Running.StartedAt.Time
		}
	}
	if err := n.assignIP(p, nd, r); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.pods[key] = r
	n.mu.Unlock()
	return r, nil
}

// assignIP keeps the address the pod reports if it can, else takes a free
// one from the node's pod CIDR.
func (n *Nodes) assignIP(p *corev1.Pod, nd *node, r *podRun) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.pool == nil {
		cidr := defaultPodCIDR(nd.index)
		if cur, err := n.nodeLister.Get(nd.name); err == nil && cur.Spec.PodCIDR != "" {
			cidr = cur.Spec.PodCIDR
		}
		pool, err := newIPPool(cidr)
		if err != nil {
			return fmt.Errorf("node %s: %w", nd.name, err)
		}
		nd.pool = pool
	}
	if p.Status.PodIP != "" {
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil && nd.pool.reserve(a, p.UID) {
			r.ip, r.pooled = a.String(), a
			return nil
		}
	}
	a, err := nd.pool.allocate(p.UID)
	if err != nil {
		return fmt.Errorf("pod %s on %s: %w", podKey(p), nd.name, err)
	}
	r.ip, r.pooled = a.String(), a
	return nil
}

// forget drops a pod's run and frees its address.
func (n *Nodes) forget(key string) {
	n.mu.Lock()
	r := n.pods[key]
	delete(n.pods, key)
	n.mu.Unlock()
	if r == nil || !r.pooled.IsValid() {
		return
	}
	r.node.mu.Lock()
	r.node.pool.release(r.pooled, r.uid)
	r.node.mu.Unlock()
}

// syncPod brings one pod's status in line with its simulated life. It is
// idempotent and reads only the informer's copy.
func (n *Nodes) syncPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	p, err := n.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		n.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	nd := n.nodes[p.Spec.NodeName]
	if nd == nil {
		n.forget(key)
		return nil
	}
	if !nd.heartbeat.Load() {
		return nil // a dead node writes nothing; SetHeartbeat(on) requeues its pods
	}
	if p.DeletionTimestamp != nil {
		return n.stopPod(ctx, p, nd)
	}
	if terminal(p) {
		n.forget(key)
		return nil
	}
	r, err := n.runFor(p, nd)
	if err != nil {
		return err
	}
	now := n.now()
	st, next := n.podStatus(p, r, now)
	if err := n.writeStatus(ctx, p, st); err != nil {
		return err
	}
	if next > 0 {
		n.podQueue.AddAfter(key, next)
	}
	return nil
}

// writeStatus posts st over the informer's copy of p unless nothing changed.
// A conflict returns an error so the key is requeued with a fresh copy.
func (n *Nodes) writeStatus(ctx context.Context, p *corev1.Pod, st corev1.PodStatus) error {
	if apiequality.Semantic.DeepEqual(st, p.Status) {
		return nil
	}
	upd := p.DeepCopy()
	upd.Status = st
	_, err := n.cfg.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update status of pod %s: %w", podKey(p), err)
	}
	return nil
}

// stopPod finishes a graceful deletion: the simulated containers stop
// within min(grace period, stopGrace), their status says so, and the pod
// is deleted for good, as the kubelet does.
func (n *Nodes) stopPod(ctx context.Context, p *corev1.Pod, nd *node) error {
	key := podKey(p)
	now := n.now()
	wait := time.Duration(0)
	if !terminal(p) {
		r, err := n.runFor(p, nd)
		if err != nil {
			return err
		}
		if r.stopping.IsZero() {
			r.stopping = now
		}
		wait = n.timing.stopGrace
		if g := p.DeletionGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < wait {
			wait = time.Duration(*g) * time.Second
		}
		if left := r.stopping.Add(wait).Sub(now); left > 0 {
			n.podQueue.AddAfter(key, left)
			return nil
		}
		if err := n.writeStatus(ctx, p, stoppedStatus(p, r, now)); err != nil {
			return err
		}
	}
	err := n.cfg.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptrTo[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s: %w", key, err)
	}
	n.forget(key)
	return nil
}

// exitScript is what the pod's annotations ask of its containers.
type exitScript struct {
	after time.Duration // 0: run forever
	code  int32
}

func scriptOf(p *corev1.Pod) exitScript {
	var s exitScript
	if d, err := time.ParseDuration(p.Annotations[AnnotationExitAfter]); err == nil && d > 0 {
		s.after = d
	}
	if c, err := strconv.ParseInt(p.Annotations[AnnotationExitCode], 10, 32); err == nil {
		s.code = int32(c)
	}
	return s
}

// restarts reports whether the kubelet would start a container again after
// it exited with code.
func restarts(policy corev1.RestartPolicy, code int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	default:
		return true
	}
}

func exitReason(code int32) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

// advance plays the exit script forward to now: exits, back-offs and
// restarts, or the final exit.
func (n *Nodes) advance(p *corev1.Pod, r *podRun, s exitScript, now time.Time) {
	for s.after > 0 && !r.exited {
		exitAt := r.runStart.Add(s.after)
		if now.Before(exitAt) {
			return
		}
		if !restarts(p.Spec.RestartPolicy, s.code) {
			r.exited, r.exitCode, r.finished = true, s.code, exitAt
			return
		}
		r.last = &corev1.ContainerStateTerminated{ExitCode: s.code, Reason: exitReason(s.code),
			StartedAt: stamp(r.runStart), FinishedAt: stamp(exitAt)}
		r.restarts++
		r.runStart = exitAt.Add(n.timing.crashBackoff)
	}
}

// podStatus is the pod's status at now, and how long until it next changes
// by itself (0: never).
func (n *Nodes) podStatus(p *corev1.Pod, r *podRun, now time.Time) (corev1.PodStatus, time.Duration) {
	s := scriptOf(p)
	n.advance(p, r, s, now)
	running := !r.exited && !now.Before(r.runStart)
	var next time.Duration
	soon := func(at time.Time) {
		if d := at.Sub(now); d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	if !r.exited {
		soon(r.runStart)
		if s.after > 0 {
			soon(r.runStart.Add(s.after))
		}
	}

	st := *p.Status.DeepCopy()
	st.ObservedGeneration = p.Generation
	st.HostIP, st.HostIPs = r.node.internalIP, []corev1.HostIP{{IP: r.node.internalIP}}
	st.PodIP, st.PodIPs = r.ip, []corev1.PodIP{{IP: r.ip}}
	st.StartTime = ptrTo(stamp(r.started))
	st.Phase = corev1.PodRunning
	st.InitContainerStatuses = initStatuses(p, r)

	allReady := true
	st.ContainerStatuses = make([]corev1.ContainerStatus, 0, len(p.Spec.Containers))
	for _, c := range p.Spec.Containers {
		cs := containerStatus(p, c, r)
		switch {
		case r.exited:
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: r.exitCode, Reason: exitReason(r.exitCode),
				StartedAt: stamp(r.runStart), FinishedAt: stamp(r.finished), ContainerID: cs.ContainerID}
		case !running:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %v restarting failed container=%s pod=%s_%s(%s)", n.timing.crashBackoff, c.Name, p.Name, p.Namespace, p.UID)}
		default:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: stamp(r.runStart)}
			cs.Started = ptrTo(true)
			readyAt := r.runStart
			if c.ReadinessProbe != nil {
				readyAt = readyAt.Add(time.Duration(c.ReadinessProbe.InitialDelaySeconds) * time.Second)
			}
			cs.Ready = !now.Before(readyAt)
			soon(readyAt)
		}
		allReady = allReady && cs.Ready
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}

	ready, notReady := corev1.ConditionTrue, ""
	sandbox := corev1.ConditionTrue
	switch {
	case r.exited && r.exitCode == 0:
		st.Phase, ready, notReady, sandbox = corev1.PodSucceeded, corev1.ConditionFalse, "PodCompleted", corev1.ConditionFalse
	case r.exited:
		st.Phase, ready, notReady, sandbox = corev1.PodFailed, corev1.ConditionFalse, "PodFailed", corev1.ConditionFalse
	case !allReady:
		ready, notReady = corev1.ConditionFalse, "ContainersNotReady"
	}
	ts := stamp(now)
	for _, c := range []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: sandbox},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
		{Type: corev1.PodReady, Status: ready, Reason: notReady},
		{Type: corev1.ContainersReady, Status: ready, Reason: notReady},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
	} {
		c.ObservedGeneration = p.Generation
		st.Conditions = setCondition(st.Conditions, c, ts)
	}
	if r.exited {
		next = 0
	}
	return st, next
}

func containerStatus(p *corev1.Pod, c corev1.Container, r *podRun) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "hollow://" + c.Image,
		ContainerID: fmt.Sprintf("hollow://%s/%s", p.UID, c.Name), RestartCount: r.restarts, Started: ptrTo(false)}
	if r.last != nil {
		last := *r.last
		last.ContainerID = cs.ContainerID
		cs.LastTerminationState.Terminated = &last
	}
	return cs
}

// initStatuses: init containers ran to completion before the pod started;
// restartable (sidecar) ones keep running.
func initStatuses(p *corev1.Pod, r *podRun) []corev1.ContainerStatus {
	if len(p.Spec.InitContainers) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, 0, len(p.Spec.InitContainers))
	for _, c := range p.Spec.InitContainers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "hollow://" + c.Image,
			ContainerID: fmt.Sprintf("hollow://%s/%s", p.UID, c.Name), Ready: true, Started: ptrTo(false)}
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways && !r.exited {
			cs.Started = ptrTo(true)
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: stamp(r.started)}
		} else {
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
				StartedAt: stamp(r.started), FinishedAt: stamp(r.started), ContainerID: cs.ContainerID}
		}
		out = append(out, cs)
	}
	return out
}

// stoppedStatus is the status once a deleted pod's containers stopped.
func stoppedStatus(p *corev1.Pod, r *podRun, now time.Time) corev1.PodStatus {
	st := *p.Status.DeepCopy()
	for i := range st.ContainerStatuses {
		cs := &st.ContainerStatuses[i]
		if cs.State.Terminated != nil {
			continue
		}
		started := stamp(r.runStart)
		if cs.State.Running != nil {
			started = cs.State.Running.StartedAt
		}
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
			StartedAt: started, FinishedAt: stamp(now), ContainerID: cs.ContainerID}}
		cs.Ready, cs.Started = false, ptrTo(false)
	}
	ts := stamp(now)
	for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		st.Conditions = setCondition(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionFalse,
			Reason: "PodTerminating", ObservedGeneration: p.Generation}, ts)
	}
	return st
}

// setCondition sets c in conds, keeping the transition time when the
// status did not change.
func setCondition(conds []corev1.PodCondition, c corev1.PodCondition, now metav1.Time) []corev1.PodCondition {
	c.LastTransitionTime = now
	for i := range conds {
		if conds[i].Type != c.Type {
			continue
		}
		if conds[i].Status == c.Status {
			c.LastTransitionTime = conds[i].LastTransitionTime
		}
		c.LastProbeTime = conds[i].LastProbeTime
		conds[i] = c
		return conds
	}
	return append(conds, c)
}
