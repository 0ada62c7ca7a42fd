package scheduler

import (
	"container/heap"
	"sync"
	"time"
)

// queue holds pods waiting for a node: active ones ordered by priority
// (then age), and unschedulable ones parked until a cluster change may
// let them fit.
type queue struct {
	mu            sync.Mutex
	cond          *sync.Cond
	active        podHeap
	inActive      map[string]bool
	unschedulable map[string]entry
	closed        bool
}

type entry struct {
	key      string
	priority int32
	created  time.Time
}

type podHeap []entry

func (h podHeap) Len() int { return len(h) }
func (h podHeap) Less(i, j int) bool {
	if h[i].priority != h[j].priority {
		return h[i].priority > h[j].priority
	}
	return h[i].created.Before(h[j].created)
}
func (h podHeap) Swap(i, j int)       { h[i], h[j] = h[j], h[i] }
func (h *podHeap) Push(x interface{}) { *h = append(*h, x.(entry)) }
func (h *podHeap) Pop() interface{} {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newQueue() *queue {
	q := &queue{inActive: map[string]bool{}, unschedulable: map[string]entry{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add makes a pod active (new or changed pods).
func (q *queue) Add(e entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.unschedulable, e.key)
	if q.inActive[e.key] {
		return
	}
	q.inActive[e.key] = true
	heap.Push(&q.active, e)
	q.cond.Signal()
}

// Park puts a pod that fits nowhere aside.
func (q *queue) Park(e entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.inActive[e.key] {
		q.unschedulable[e.key] = e
	}
}

// Delete forgets a pod.
func (q *queue) Delete(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.unschedulable, key)
	// An active entry is dropped when popped (the pod is gone by then).
}

// Wake moves every parked pod back to active: the cluster changed.
func (q *queue) Wake() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, e := range q.unschedulable {
		delete(q.unschedulable, k)
		if !q.inActive[k] {
			q.inActive[k] = true
			heap.Push(&q.active, e)
		}
	}
	q.cond.Broadcast()
}

// Pop blocks for the next active pod; ok is false once closed.
func (q *queue) Pop() (entry, bool) { return q.PopUntil(nil) }

// PopUntil is Pop that also gives up when stop is closed (leadership lost);
// the queue stays usable.
func (q *queue) PopUntil(stop <-chan struct{}) (entry, bool) {
	if stop != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-stop:
				q.mu.Lock()
				q.cond.Broadcast()
				q.mu.Unlock()
			case <-done:
			}
		}()
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 && !q.closed && !stopped() {
		q.cond.Wait()
	}
	if q.closed || stopped() {
		return entry{}, false
	}
	e := heap.Pop(&q.active).(entry)
	delete(q.inActive, e.key)
	return e, true
}

// Close wakes Pop for good.
func (q *queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// Lens reports the active and parked counts.
func (q *queue) Lens() (int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), len(q.unschedulable)
}
