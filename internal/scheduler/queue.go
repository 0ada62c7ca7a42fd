package scheduler

import (
	"container/heap"
	"sync"
	"time"
)

// Backoff before a pod that failed is retried, doubling per failure, as
// upstream's podInitialBackoffDuration and podMaxBackoffDuration.
const (
	initialBackoff = time.Second
	maxBackoff     = 10 * time.Second
)

// queue holds pods waiting for a node: active ones ordered by priority
// (then age); unschedulable ones parked, with the plugins that rejected
// them, until a cluster event that may cure one of those plugins wakes
// them; and woken ones still in their backoff.
type queue struct {
	mu            sync.Mutex
	cond          *sync.Cond
	active        podHeap
	inActive      map[string]bool
	unschedulable map[string]entry
	backoff       map[string]entry
	timer         *time.Timer
	timerAt       time.Time // when timer fires; zero when not armed
	// moves counts wake-ups; a pod whose cycle saw one is not parked (the
	// event may have cured it after its snapshot) but retried after its
	// backoff.
	moves  uint64
	closed bool
	now    func() time.Time
}

type entry struct {
	key      string
	priority int32
	created  time.Time

	attempts  int             // failed cycles so far
	failedAt  time.Time       // end of the last failed cycle
	rejectors map[string]bool // plugins that rejected it last time
	moves     uint64          // queue.moves when popped
}

// readyAt is when the entry's backoff ends.
func (e entry) readyAt() time.Time {
	if e.attempts == 0 {
		return time.Time{}
	}
	d := initialBackoff
	for i := 1; i < e.attempts && d < maxBackoff; i++ {
		d *= 2
	}
	return e.failedAt.Add(min(d, maxBackoff))
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
	q := &queue{inActive: map[string]bool{}, unschedulable: map[string]entry{}, backoff: map[string]entry{}, now: time.Now}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add makes a pod active (new or changed pods).
func (q *queue) Add(e entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.unschedulable, e.key)
	delete(q.backoff, e.key)
	q.push(e)
}

func (q *queue) push(e entry) {
	if q.inActive[e.key] {
		return
	}
	q.inActive[e.key] = true
	heap.Push(&q.active, e)
	q.cond.Signal()
}

// Park puts aside a pod that fits nowhere, with the plugins that rejected
// it. If the cluster changed while it was being scheduled it is retried
// after its backoff instead.
func (q *queue) Park(e entry, rejectors map[string]bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inActive[e.key] {
		return // changed meanwhile and queued again
	}
	e.attempts++
	e.failedAt = q.now()
	e.rejectors = rejectors
	if q.moves != e.moves {
		q.activate(e)
		return
	}
	q.unschedulable[e.key] = e
}

// Delete forgets a pod.
func (q *queue) Delete(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.unschedulable, key)
	delete(q.backoff, key)
	// An active entry is dropped when popped (the pod is gone by then).
}

// Wake moves every parked pod back to active (after its backoff): the
// cluster changed in a way any plugin may care about.
func (q *queue) Wake() { q.wake(func(entry) bool { return true }) }

// WakeFor moves back the parked pods that one of plugins rejected: the
// event may cure only those.
func (q *queue) WakeFor(plugins ...string) {
	q.wake(func(e entry) bool {
		for _, p := range plugins {
			if e.rejectors[p] {
				return true
			}
		}
		return false
	})
}

func (q *queue) wake(match func(entry) bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moves++
	for k, e := range q.unschedulable {
		if match(e) {
			delete(q.unschedulable, k)
			q.activate(e)
		}
	}
}

// activate queues e now or, within its backoff, once the backoff ends.
func (q *queue) activate(e entry) {
	at := e.readyAt()
	if !at.After(q.now()) {
		q.push(e)
		return
	}
	q.backoff[e.key] = e
	if q.closed || !q.timerAt.IsZero() && !at.Before(q.timerAt) {
		return
	}
	q.timerAt = at
	if q.timer == nil {
		q.timer = time.AfterFunc(at.Sub(q.now()), q.flushBackoff)
	} else {
		q.timer.Reset(at.Sub(q.now()))
	}
}

// flushBackoff activates the entries whose backoff has ended and re-arms
// the timer for the next one.
func (q *queue) flushBackoff() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.timerAt = time.Time{}
	now := q.now()
	var rest []entry
	for k, e := range q.backoff {
		delete(q.backoff, k)
		if e.readyAt().After(now) {
			rest = append(rest, e)
			continue
		}
		q.push(e)
	}
	for _, e := range rest {
		q.activate(e)
	}
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
	e.moves = q.moves
	return e, true
}

// Close wakes Pop for good.
func (q *queue) Close() {
	q.mu.Lock()
	q.closed = true
	if q.timer != nil {
		q.timer.Stop()
	}
	q.mu.Unlock()
	q.cond.Broadcast()
}

// Lens reports the active and the waiting (parked or backing off) counts.
func (q *queue) Lens() (int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), len(q.unschedulable) + len(q.backoff)
}
