package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// writeQueue limits how many mutating requests run at once and lines up
// the rest first come, first served, as upstream's API Priority and
// Fairness queues requests for a limited number of seats (its
// --max-mutating-requests-inflight, default 200, sizes them). The line is
// bounded: a request that finds it full, or that waits longer than
// maxWait, is refused (429 with Retry-After, as upstream's), never left to
// wait without end. The zero limit turns the queue off.
//
// Measured as a way to tighten the latency spread of 100 closed-loop
// clients on 2 CPUs (docs/architecture.md): a few seats made every write
// cost more CPU, because a request keeps its seat while etcd commits it
// and fewer writes in flight make raft's batches (one append, one fsync)
// smaller; so the default is upstream's generous limit, a bound on
// overload rather than a scheduler.
type writeQueue struct {
	limit      int           // seats: requests running at once
	maxWaiting int           // requests that may wait for a seat
	maxWait    time.Duration // longest wait for a seat

	// running and nwaiting are read without the lock: a request that
	// finds a free seat and nobody waiting takes it with one atomic
	// operation, so the line costs nothing until it is needed. (A mutex
	// taken twice by every write convoyed on an oversubscribed machine,
	// when the OS stopped the thread holding it.)
	running  atomic.Int64
	nwaiting atomic.Int64 // len(waiting)

	mu      sync.Mutex
	waiting []*waiter // FIFO; granted or abandoned entries are removed
}

type waiter struct {
	ready   chan struct{} // closed when the seat is handed over
	granted bool
}

// errQueueFull and errQueueTimeout are why a request got no seat.
var (
	errQueueFull    = errors.New("too many requests are waiting")
	errQueueTimeout = errors.New("the request waited too long for its turn")
)

func newWriteQueue(limit, maxWaiting int, maxWait time.Duration) *writeQueue {
	if limit <= 0 {
		return nil
	}
	return &writeQueue{limit: limit, maxWaiting: maxWaiting, maxWait: maxWait}
}

// take takes a free seat, if there is one.
func (q *writeQueue) take() bool {
	for {
		r := q.running.Load()
		if r >= int64(q.limit) {
			return false
		}
		if q.running.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// acquire waits for a seat in arrival order. On success the caller must
// call release once its request is done. It fails with errQueueFull,
// errQueueTimeout or the context's error. A nil queue always admits.
func (q *writeQueue) acquire(ctx context.Context) error {
	if q == nil {
		return nil
	}
	if q.nwaiting.Load() == 0 && q.take() {
		return nil
	}
	q.mu.Lock()
	if len(q.waiting) >= q.maxWaiting {
		q.mu.Unlock()
		return errQueueFull
	}
	w := &waiter{ready: make(chan struct{})}
	q.waiting = append(q.waiting, w)
	q.nwaiting.Store(int64(len(q.waiting)))
	// A seat freed since the fast path failed is handed out here: a
	// release that saw nobody waiting did not look for us.
	q.dispatchLocked()
	q.mu.Unlock()

	timer := time.NewTimer(q.maxWait)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errQueueTimeout
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.granted {
		// The seat arrived as the wait ended: pass it on.
		q.running.Add(-1)
		q.dispatchLocked()
		return err
	}
	for i, o := range q.waiting {
		if o == w {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			break
		}
	}
	q.nwaiting.Store(int64(len(q.waiting)))
	return err
}

// release gives the caller's seat back and hands free seats to the first
// waiting requests.
func (q *writeQueue) release() {
	if q == nil {
		return
	}
	q.running.Add(-1)
	if q.nwaiting.Load() > 0 {
		q.mu.Lock()
		q.dispatchLocked()
		q.mu.Unlock()
	}
}

// dispatchLocked gives free seats to waiting requests in arrival order.
func (q *writeQueue) dispatchLocked() {
	for len(q.waiting) > 0 && q.take() {
		w := q.waiting[0]
		q.waiting[0] = nil
		q.waiting = q.waiting[1:]
		q.nwaiting.Store(int64(len(q.waiting)))
		w.granted = true
		close(w.ready)
	}
}

// queued reports the running and waiting requests (tests, metrics).
func (q *writeQueue) queued() (running, waiting int) {
	return int(q.running.Load()), int(q.nwaiting.Load())
}

// queuedWrite says whether a request waits in the write queue: mutating
// requests of network clients, but not the long-running connections
// (exec, attach, port-forward, proxy) nor in-process clients, whose
// writes (the scheduler's bindings, the controllers') are what the
// queued requests wait on and must never starve behind them.
func queuedWrite(r *http.Request, info requestInfo) bool {
	switch info.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
	default:
		return false
	}
	switch info.Subresource {
	case "log", "exec", "attach", "portforward", "proxy":
		return false
	}
	return !fromLoopback(r.Context())
}

// refuseWrite answers a request that got no seat: 429 with Retry-After,
// as upstream's, or the client's own cancellation.
func (s *Server) refuseWrite(w http.ResponseWriter, r *http.Request, res *resource, err error) {
	if errors.Is(err, errQueueFull) || errors.Is(err, errQueueTimeout) {
		s.writeError(w, r, apierrors.NewTooManyRequests(
			fmt.Sprintf("too many requests, please try again later (%v)", err), 1), res.gr, "")
		return
	}
	s.writeError(w, r, err, res.gr, "")
}

// register publishes the queue's occupancy under upstream's metric names
// (kind "mutating": network clients' writes only).
func (q *writeQueue) register(reg *prometheus.Registry) {
	labels := prometheus.Labels{"request_kind": "mutating"}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "apiserver_current_inflight_requests", ConstLabels: labels,
			Help: "Mutating requests of network clients being served (their seats; --max-mutating-requests-inflight)."},
			func() float64 { r, _ := q.queued(); return float64(r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "apiserver_current_inqueue_requests", ConstLabels: labels,
			Help: "Mutating requests of network clients waiting for a seat."},
			func() float64 { _, w := q.queued(); return float64(w) }),
	)
}
