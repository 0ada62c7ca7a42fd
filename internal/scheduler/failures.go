package scheduler

import (
	"context"
	"encoding/json"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"
)

// Pacing of the records of pods that fit nowhere: kube-scheduler's default
// client QPS and burst (which upstream also spends on binds; here binds
// are not paced by it).
const (
	defaultFailureQPS   = 50
	defaultFailureBurst = 100
)

// failureWriter writes, off the scheduling loop, what the scheduler found
// for pods it cannot place: the PodScheduled=False condition and a
// FailedScheduling event. These writes only inform; nothing waits for
// them, and a burst of pods that fit nowhere (no node yet, a quota of
// resources used up) would otherwise add two writes per pod to the API
// server just when it is busiest. So, as upstream's asynchronous API calls
// merge a pod's pending status patches:
//   - a pod has at most one pending record; a newer message replaces it;
//   - a record is dropped when, at its turn, the pod is gone, bound, no
//     longer this scheduler's or already carries the message;
//   - records are written one at a time, in the order the pods first
//     failed, paced by a token bucket (upstream's client QPS and burst).
//
// Records that nominate a node (preemption) are written at once by the
// scheduling loop, before any victim is deleted; they drop a pending
// record of the same pod.
type failureWriter struct {
	limiter flowcontrol.RateLimiter
	// write records one failure; it is called with writeMu held.
	write func(ctx context.Context, f failure)

	mu      sync.Mutex
	pending map[string]failure
	order   []string // keys of pending, oldest first
	wake    chan struct{}

	writeMu sync.Mutex // held while a record is written
}

// failure is one pod's pending record.
type failure struct {
	pod *corev1.Pod // as the cycle saw it
	msg string
}

func newFailureWriter(qps float32, burst int, write func(context.Context, failure)) *failureWriter {
	var limiter flowcontrol.RateLimiter
	if qps > 0 {
		limiter = flowcontrol.NewTokenBucketRateLimiter(qps, max(burst, 1))
	}
	return &failureWriter{limiter: limiter, write: write, pending: map[string]failure{}, wake: make(chan struct{}, 1)}
}

// Add queues pod's record, replacing a pending one.
func (w *failureWriter) Add(pod *corev1.Pod, msg string) {
	k := key(pod)
	w.mu.Lock()
	if _, ok := w.pending[k]; !ok {
		w.order = append(w.order, k)
	}
	w.pending[k] = failure{pod: pod, msg: msg}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Forget drops pod k's pending record (deleted, or written at once).
func (w *failureWriter) Forget(k string) {
	w.mu.Lock()
	delete(w.pending, k)
	w.mu.Unlock()
}

// Len is the number of pending records.
func (w *failureWriter) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// next takes the oldest pending record.
func (w *failureWriter) next() (failure, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.order) > 0 {
		k := w.order[0]
		w.order[0] = ""
		w.order = w.order[1:]
		if f, ok := w.pending[k]; ok {
			delete(w.pending, k)
			return f, true
		}
	}
	w.order = nil // let the drained array go
	return failure{}, false
}

// Run writes records until ctx ends (those pending then stay for the
// next Run).
func (w *failureWriter) Run(ctx context.Context) {
	for {
		for w.Len() > 0 {
			if w.limiter != nil {
				if err := w.limiter.Wait(ctx); err != nil {
					return
				}
			}
			f, ok := w.next()
			if !ok {
				break
			}
			w.writeMu.Lock()
			w.write(ctx, f)
			w.writeMu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
	}
}

// writeFailure is the failureWriter's write: it records f unless the pod,
// as the informer has it now, no longer needs it.
func (s *Scheduler) writeFailure(ctx context.Context, f failure) {
	cur, err := s.pods.Pods(f.pod.Namespace).Get(f.pod.Name)
	if err != nil || cur.UID != f.pod.UID || !s.responsible(cur) || hasUnschedulable(cur, f.msg) {
		return
	}
	s.writeUnschedulable(ctx, cur, f.msg, "")
}

// hasUnschedulable reports whether pod already carries PodScheduled=False
// with msg.
func hasUnschedulable(pod *corev1.Pod, msg string) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == msg {
			return true
		}
	}
	return false
}

// markUnschedulable records that pod fits nowhere (with msg), once per
// distinct message: in the background and paced, or, when a preemption
// nominated a node for it, at once (status.nominatedNodeName must be
// written before any victim is deleted).
func (s *Scheduler) markUnschedulable(ctx context.Context, pod *corev1.Pod, msg, nominate string) {
	if nominate == "" || nominate == pod.Status.NominatedNodeName {
		if hasUnschedulable(pod, msg) {
			s.failures.Forget(key(pod))
			return
		}
	}
	if nominate == "" {
		s.failures.Add(pod, msg)
		return
	}
	s.failures.writeMu.Lock()
	defer s.failures.writeMu.Unlock()
	s.failures.Forget(key(pod))
	s.writeUnschedulable(ctx, pod, msg, nominate)
}

// writeUnschedulable records a FailedScheduling event and patches
// PodScheduled=False (and status.nominatedNodeName, if nominate is set).
func (s *Scheduler) writeUnschedulable(ctx context.Context, pod *corev1.Pod, msg, nominate string) {
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", msg)
	status := map[string]interface{}{"conditions": []interface{}{map[string]interface{}{
		"type": corev1.PodScheduled, "status": corev1.ConditionFalse, "reason": corev1.PodReasonUnschedulable,
		"message": msg, "lastTransitionTime": metav1.Now(),
	}}}
	if nominate != "" {
		status["nominatedNodeName"] = nominate
	}
	patch, _ := json.Marshal(map[string]interface{}{"status": status})
	_, err := s.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		s.log.Warn("record unschedulable", "pod", key(pod), "err", err)
	}
}
