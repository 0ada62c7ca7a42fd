package kubelet

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The pod status of a pod whose activeDeadlineSeconds passed (upstream's).
const (
	reasonDeadlineExceeded  = "DeadlineExceeded"
	messageDeadlineExceeded = "Pod was active on the node longer than the specified deadline"
)

// podStatus is the pod's status as the runtime has it.
// sbStatus is the status of the pod's ready sandbox (nil if it has none).
func (k *Kubelet) podStatus(ctx context.Context, p *corev1.Pod, st *podState, sbStatus *runtimeapi.PodSandboxStatus, w *podWork) (corev1.PodStatus, error) {
	status := *p.Status.DeepCopy()
	now := metav1.NewTime(k.now().Truncate(time.Second))
	status.ObservedGeneration = p.Generation
	status.HostIP, status.HostIPs = k.nodeIP, []corev1.HostIP{{IP: k.nodeIP}}
	if status.StartTime == nil {
		status.StartTime = &now
	}
	sandboxReady := false
	if sbStatus != nil {
		sandboxReady = sbStatus.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY
		if n := sbStatus.GetNetwork(); n != nil && n.Ip != "" {
			status.PodIP, status.PodIPs = n.Ip, []corev1.PodIP{{IP: n.Ip}}
			for _, a := range n.AdditionalIps {
				status.PodIPs = append(status.PodIPs, corev1.PodIP{IP: a.Ip})
			}
		} else if p.Spec.HostNetwork {
			status.PodIP, status.PodIPs = k.nodeIP, []corev1.PodIP{{IP: k.nodeIP}}
		}
	}

	status.InitContainerStatuses = nil
	allReady := true
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		cs := k.containerStatus(c, st, w.waiting[c.Name], reasonPodInitializing)
		if isSidecar(c) {
			// A sidecar is ready as a container is, and counts for the pod.
			allReady = allReady && cs.Ready
		} else {
			cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		}
		status.InitContainerStatuses = append(status.InitContainerStatuses, cs)
	}
	status.ContainerStatuses = nil
	var pending, running, succeeded, failed int
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		def := reasonContainerCreating
		if !w.initDone {
			def = reasonPodInitializing
		}
		cs := k.containerStatus(c, st, w.waiting[c.Name], def)
		allReady = allReady && cs.Ready
		switch t := cs.State.Terminated; {
		case cs.State.Running != nil:
			running++
		case t != nil && !restarts(p.Spec.RestartPolicy, t.ExitCode):
			if t.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		case cs.LastTerminationState.Terminated != nil || t != nil:
			running++ // exited, and will run again
		default:
			pending++
		}
		status.ContainerStatuses = append(status.ContainerStatuses, cs)
	}

	switch {
	case w.deadlineExceeded:
		status.Phase, status.Reason, status.Message = corev1.PodFailed, reasonDeadlineExceeded, messageDeadlineExceeded
	case w.initFailed:
		status.Phase = corev1.PodFailed
	case !w.initDone || pending > 0:
		status.Phase = corev1.PodPending
	case running > 0:
		status.Phase = corev1.PodRunning
	case failed > 0:
		status.Phase = corev1.PodFailed
	default:
		status.Phase = corev1.PodSucceeded
	}

	ready, notReady := corev1.ConditionTrue, ""
	switch {
	case status.Phase == corev1.PodSucceeded:
		ready, notReady = corev1.ConditionFalse, "PodCompleted"
	case status.Phase == corev1.PodFailed:
		ready, notReady = corev1.ConditionFalse, "PodFailed"
	case !allReady:
		ready, notReady = corev1.ConditionFalse, "ContainersNotReady"
	}
	initialized, notInit := corev1.ConditionTrue, ""
	if !w.initDone {
		initialized, notInit = corev1.ConditionFalse, "ContainersNotInitialized"
	}
	sandbox := corev1.ConditionFalse
	if sandboxReady && !terminalPhase(status.Phase) {
		sandbox = corev1.ConditionTrue
	}
	for _, c := range []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: sandbox},
		{Type: corev1.PodInitialized, Status: initialized, Reason: notInit},
		{Type: corev1.PodReady, Status: ready, Reason: notReady},
		{Type: corev1.ContainersReady, Status: ready, Reason: notReady},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
	} {
		c.ObservedGeneration = p.Generation
		status.Conditions = setCondition(status.Conditions, c, now)
	}
	return status, nil
}

func terminalPhase(ph corev1.PodPhase) bool {
	return ph == corev1.PodSucceeded || ph == corev1.PodFailed
}

// containerStatus reports a container's newest attempt; waiting, if set,
// overrides its state (the newest run's end becomes lastState); def is the
// waiting reason of a container that has not run yet.
func (k *Kubelet) containerStatus(c *corev1.Container, st *podState, waiting *corev1.ContainerStateWaiting, def string) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	latest, prev := st.latest(c.Name), st.previous(c.Name)
	if latest == nil {
		if waiting == nil {
			waiting = &corev1.ContainerStateWaiting{Reason: def}
		}
		cs.State.Waiting = waiting
		return cs
	}
	cs.ContainerID = k.containerID(latest.Id)
	cs.ImageID = latest.ImageRef
	cs.RestartCount = int32(latest.GetMetadata().GetAttempt())
	if prev != nil {
		cs.LastTerminationState.Terminated = k.terminated(c, prev)
	}
	switch latest.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: nanoTime(latest.StartedAt)}
		started, ready := true, true
		if c.StartupProbe != nil {
			started, _ = k.probes.result(latest.Id, startup)
		}
		if c.ReadinessProbe != nil {
			ready, _ = k.probes.result(latest.Id, readiness)
		}
		cs.Started, cs.Ready = ptrTo(started), started && ready
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		t := k.terminated(c, latest)
		if waiting != nil {
			cs.State.Waiting, cs.LastTerminationState.Terminated = waiting, t
		} else {
			cs.State.Terminated = t
		}
		cs.Started = ptrTo(false)
	default:
		if waiting == nil {
			waiting = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}
		}
		cs.State.Waiting = waiting
		cs.Started = ptrTo(false)
	}
	return cs
}

// terminated is the end of one run of c; its message is the runtime's
// followed by the termination message (termination.go).
func (k *Kubelet) terminated(c *corev1.Container, s *runtimeapi.ContainerStatus) *corev1.ContainerStateTerminated {
	reason := s.Reason
	switch {
	case reason == "OOMKilled" || reason == "StartError":
	case s.ExitCode == 0:
		reason = "Completed"
	default:
		reason = "Error"
	}
	msg := s.Message
	if tm := terminationMessage(c, s); tm != "" {
		if msg != "" {
			msg += ": "
		}
		msg += tm
	}
	return &corev1.ContainerStateTerminated{ExitCode: s.ExitCode, Reason: reason, Message: msg,
		StartedAt: nanoTime(s.StartedAt), FinishedAt: nanoTime(s.FinishedAt), ContainerID: k.containerID(s.Id)}
}

// containerID is "<runtime>://<id>", as upstream reports it.
func (k *Kubelet) containerID(id string) string {
	name, _, _ := strings.Cut(k.runtimeVersion, "://")
	return name + "://" + id
}

func nanoTime(ns int64) metav1.Time {
	if ns == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(0, ns).Truncate(time.Second))
}

// setCondition sets c in conds, keeping the transition time if the status
// did not change.
func setCondition(conds []corev1.PodCondition, c corev1.PodCondition, now metav1.Time) []corev1.PodCondition {
	c.LastTransitionTime = now
	for i, o := range conds {
		if o.Type == c.Type {
			if o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
			conds[i] = c
			return conds
		}
	}
	return append(conds, c)
}

// writeStatus posts st over the informer's copy of p unless nothing changed.
func (k *Kubelet) writeStatus(ctx context.Context, p *corev1.Pod, st corev1.PodStatus) error {
	if apiequality.Semantic.DeepEqual(st, p.Status) {
		return nil
	}
	upd := p.DeepCopy()
	upd.Status = st
	pods := k.cfg.Client.CoreV1().Pods(p.Namespace)
	_, err := pods.UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		// The cache's copy is stale; the status comes from the runtime, so it
		// goes over the server's copy as is rather than waiting for a requeue.
		var cur *corev1.Pod
		if cur, err = pods.Get(ctx, p.Name, metav1.GetOptions{}); err == nil {
			if cur.UID != p.UID {
				return nil
			}
			cur.Status = st
			_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		}
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update status of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}
