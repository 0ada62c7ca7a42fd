package job

import (
	"encoding/json"
	"slices"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// finalizerExpectations remember, per Job key, the pods whose tracking
// finalizer this controller removed and the informer has not shown without
// it yet. Such a pod is already counted in status; counting it again from a
// stale cache would count it twice.
type finalizerExpectations struct {
	mu sync.Mutex
	m  map[string]map[types.UID]struct{}
}

func newFinalizerExpectations() *finalizerExpectations {
	return &finalizerExpectations{m: map[string]map[types.UID]struct{}{}}
}

func (f *finalizerExpectations) expect(key string, uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.m[key]
	if !ok {
		s = map[types.UID]struct{}{}
		f.m[key] = s
	}
	s[uid] = struct{}{}
}

func (f *finalizerExpectations) observed(key string, uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.m[key]; ok {
		delete(s, uid)
		if len(s) == 0 {
			delete(f.m, key)
		}
	}
}

func (f *finalizerExpectations) has(key string, uid types.UID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.m[key][uid]
	return ok
}

func (f *finalizerExpectations) forget(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, key)
}

func hasTrackingFinalizer(p *corev1.Pod) bool {
	return slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer)
}

// removeFinalizerPatch is a strategic merge patch dropping the tracking
// finalizer (other finalizers stay), guarded by the pod's UID.
func removeFinalizerPatch(p *corev1.Pod) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"$deleteFromPrimitiveList/finalizers": []string{batchv1.JobTrackingFinalizer},
		"uid":                                 p.UID,
	}})
	return b
}

// uncounted is the job's status.uncountedTerminatedPods as sets.
type uncounted struct {
	succeeded, failed map[types.UID]struct{}
}

func newUncounted(u *batchv1.UncountedTerminatedPods) uncounted {
	out := uncounted{succeeded: map[types.UID]struct{}{}, failed: map[types.UID]struct{}{}}
	if u == nil {
		return out
	}
	for _, id := range u.Succeeded {
		out.succeeded[id] = struct{}{}
	}
	for _, id := range u.Failed {
		out.failed[id] = struct{}{}
	}
	return out
}

func (u uncounted) has(id types.UID) bool {
	_, s := u.succeeded[id]
	_, f := u.failed[id]
	return s || f
}

// moveCounted moves UIDs of pods that no longer carry the finalizer (or no
// longer exist) from the uncounted lists into the counters. It reports
// whether status changed.
func moveCounted(st *batchv1.JobStatus, withFinalizer map[types.UID]struct{}) bool {
	if st.UncountedTerminatedPods == nil {
		st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
		return true
	}
	changed := false
	filter := func(ids []types.UID, counter *int32) []types.UID {
		var keep []types.UID
		for _, id := range ids {
			if _, ok := withFinalizer[id]; ok {
				keep = append(keep, id)
				continue
			}
			*counter++
			changed = true
		}
		return keep
	}
	u := st.UncountedTerminatedPods
	u.Succeeded = filter(u.Succeeded, &st.Succeeded)
	u.Failed = filter(u.Failed, &st.Failed)
	return changed
}
