package endpointslice

import (
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// deletionExpected marks a slice this controller deleted.
const deletionExpected = -1

// sliceTracker remembers the generation of every slice this controller
// wrote, per Service, as upstream's EndpointSliceTracker: a cache that
// lacks a slice we created, shows an older generation, or still shows one
// we deleted is stale, and a sync on it would create duplicates.
type sliceTracker struct {
	mu   sync.Mutex
	gens map[string]map[types.UID]int64
}

func newSliceTracker() *sliceTracker {
	return &sliceTracker{gens: map[string]map[types.UID]int64{}}
}

func serviceKeyOf(s *discoveryv1.EndpointSlice) (string, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return "", false
	}
	return s.Namespace + "/" + name, true
}

func (t *sliceTracker) set(s *discoveryv1.EndpointSlice, gen int64) {
	key, ok := serviceKeyOf(s)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.gens[key]
	if !ok {
		m = map[types.UID]int64{}
		t.gens[key] = m
	}
	m[s.UID] = gen
}

// written records a slice as the API returned it after a create or update.
func (t *sliceTracker) written(s *discoveryv1.EndpointSlice) { t.set(s, s.Generation) }

// deleted records a slice this controller deleted.
func (t *sliceTracker) deleted(s *discoveryv1.EndpointSlice) { t.set(s, deletionExpected) }

// shouldSync reports whether an informer event for s is news: a slice we
// did not write, or a newer generation than ours.
func (t *sliceTracker) shouldSync(s *discoveryv1.EndpointSlice) bool {
	key, ok := serviceKeyOf(s)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.gens[key][s.UID]
	return !ok || s.Generation > g
}

// handleDeletion forgets a deleted slice and reports whether this
// controller deleted it.
func (t *sliceTracker) handleDeletion(s *discoveryv1.EndpointSlice) bool {
	key, ok := serviceKeyOf(s)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.gens[key]
	g, ok := m[s.UID]
	delete(m, s.UID)
	if len(m) == 0 {
		delete(t.gens, key)
	}
	return ok && g == deletionExpected
}

// stale reports whether the cached slices of a Service lag behind this
// controller's own writes.
func (t *sliceTracker) stale(key string, slices []*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.gens[key]
	if !ok {
		return false
	}
	seen := make(map[types.UID]bool, len(slices))
	for _, s := range slices {
		seen[s.UID] = true
		if g, ok := m[s.UID]; ok && (g == deletionExpected || g > s.Generation) {
			return true
		}
	}
	for uid, g := range m {
		if g != deletionExpected && !seen[uid] {
			return true
		}
	}
	return false
}

// forget drops a Service.
func (t *sliceTracker) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.gens, key)
}
