package endpointutil

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/controller"
)

// TriggerTimeTracker computes the value of the
// endpoints.kubernetes.io/last-change-trigger-time annotation as upstream:
// the earliest trigger time (a pod's Ready transition, the Service's
// creation) that changed since the previous sync of the Service. Zero means
// nothing the tracker can attribute changed.
type TriggerTimeTracker struct {
	mu     sync.Mutex
	states map[string]triggerState
}

type triggerState struct {
	service time.Time
	pods    map[string]time.Time
}

// NewTriggerTimeTracker returns an empty tracker.
func NewTriggerTimeTracker() *TriggerTimeTracker {
	return &TriggerTimeTracker{states: map[string]triggerState{}}
}

// Compute returns the last-change trigger time for svc given its pods and
// records them as seen. Callers call it on every sync, written or not.
func (t *TriggerTimeTracker) Compute(svc *corev1.Service, pods []*corev1.Pod) time.Time {
	key := svc.Namespace + "/" + svc.Name
	t.mu.Lock()
	prev := t.states[key]
	t.mu.Unlock()
	next := triggerState{pods: make(map[string]time.Time, len(pods))}
	var earliest time.Time
	earlier := func(v time.Time) {
		if earliest.IsZero() || v.Before(earliest) {
			earliest = v
		}
	}
	for _, p := range pods {
		c := controller.PodReadyCondition(p)
		if c == nil || c.LastTransitionTime.IsZero() {
			continue
		}
		v := c.LastTransitionTime.Time
		next.pods[p.Name] = v
		if v.After(prev.pods[p.Name]) {
			earlier(v)
		}
	}
	next.service = svc.CreationTimestamp.Time
	if next.service.After(prev.service) {
		earlier(next.service)
	}
	t.mu.Lock()
	t.states[key] = next
	t.mu.Unlock()
	return earliest
}

// Delete forgets a Service.
func (t *TriggerTimeTracker) Delete(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.states, key)
}
