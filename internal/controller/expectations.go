package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// ExpectationsTimeout bounds how long a controller waits for its informer to
// show the creates and deletes it made before it trusts the cache anyway.
const ExpectationsTimeout = 5 * time.Minute

// Expectations record, per controller key, the creates and deletes a sync
// issued and the informer has not shown yet. A sync that finds its
// expectations unsatisfied must not create or delete more: the cache is
// behind and would make it act twice.
type Expectations struct {
	mu  sync.Mutex
	m   map[string]*expectation
	now func() time.Time
}

type expectation struct {
	adds    int
	deletes map[types.UID]struct{}
	at      time.Time
}

// NewExpectations returns empty expectations.
func NewExpectations() *Expectations {
	return &Expectations{m: map[string]*expectation{}, now: time.Now}
}

// Satisfied reports whether key has nothing outstanding (or its record has
// expired).
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	if (x.adds <= 0 && len(x.deletes) == 0) || e.now().Sub(x.at) > ExpectationsTimeout {
		delete(e.m, key)
		return true
	}
	return false
}

// ExpectCreations records that n creates were issued for key.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.get(key)
	x.adds += n
}

// ExpectDeletions records that the pods with these UIDs are being deleted.
func (e *Expectations) ExpectDeletions(key string, uids []types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.get(key)
	for _, u := range uids {
		x.deletes[u] = struct{}{}
	}
}

func (e *Expectations) get(key string) *expectation {
	x, ok := e.m[key]
	if !ok {
		x = &expectation{deletes: map[types.UID]struct{}{}}
		e.m[key] = x
	}
	x.at = e.now()
	return x
}

// CreationObserved lowers key's outstanding creates by one (a create was
// seen, or failed and will never be seen).
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok && x.adds > 0 {
		x.adds--
	}
}

// DeletionObserved marks the delete of uid as seen.
func (e *Expectations) DeletionObserved(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		delete(x.deletes, uid)
	}
}

// Delete forgets key (its owner is gone).
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
