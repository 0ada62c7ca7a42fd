package job

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Pod failure back-off, as upstream: 10 s after the first failure since the
// last success, doubling per further failure, at most 6 minutes.
const (
	DefaultPodFailureBackOff = 10 * time.Second
	MaxPodFailureBackOff     = 6 * time.Minute
)

// backoffRecord counts the pod failures of a Job since its last success.
type backoffRecord struct {
	failures    int
	lastFailure time.Time
}

// remaining is how long the Job must still wait before creating a pod.
func (r backoffRecord) remaining(now time.Time) time.Duration {
	if r.failures == 0 {
		return 0
	}
	d := DefaultPodFailureBackOff
	for i := 1; i < r.failures && d < MaxPodFailureBackOff; i++ {
		d *= 2
	}
	d = min(d, MaxPodFailureBackOff)
	if elapsed := now.Sub(r.lastFailure); elapsed < d {
		return d - elapsed
	}
	return 0
}

type backoffStore struct {
	mu sync.Mutex
	m  map[string]backoffRecord
}

func newBackoffStore() *backoffStore { return &backoffStore{m: map[string]backoffRecord{}} }

func (s *backoffStore) get(key string) backoffRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

func (s *backoffStore) set(key string, r backoffRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = r
}

func (s *backoffStore) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// nextBackoff folds newly finished pods into a record: a success resets the
// count to the failures that finished after the latest success.
func nextBackoff(r backoffRecord, succeeded, failed []*corev1.Pod, now time.Time) backoffRecord {
	if len(succeeded) == 0 && len(failed) == 0 {
		return r
	}
	var lastSuccess time.Time
	for _, p := range succeeded {
		if t := finishTime(p, now); t.After(lastSuccess) {
			lastSuccess = t
		}
	}
	if len(succeeded) > 0 {
		r = backoffRecord{lastFailure: r.lastFailure}
	}
	for _, p := range failed {
		t := finishTime(p, now)
		if len(succeeded) > 0 && !t.After(lastSuccess) {
			continue
		}
		r.failures++
		if t.After(r.lastFailure) {
			r.lastFailure = t
		}
	}
	return r
}

// finishTime is when a pod finished: its last container termination, else
// its Ready=False transition, else now.
func finishTime(p *corev1.Pod, now time.Time) time.Time {
	var t time.Time
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if term := cs.State.Terminated; term != nil && term.FinishedAt.After(t) {
				t = term.FinishedAt.Time
			}
		}
	}
	if !t.IsZero() {
		return t
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return now
}
