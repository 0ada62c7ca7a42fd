package apiserver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// waitQueued waits until q has the given number of waiting requests.
func waitQueued(t *testing.T, q *writeQueue, waiting int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, w := q.queued(); w == waiting {
			return
		}
		if time.Now().After(deadline) {
			_, w := q.queued()
			t.Fatalf("waiting requests: %d, want %d", w, waiting)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWriteQueueFIFO(t *testing.T) {
	q := newWriteQueue(2, 10, time.Minute)
	ctx := context.Background()
	for range 2 {
		if err := q.acquire(ctx); err != nil {
			t.Fatalf("seat: %v", err)
		}
	}
	order := make(chan int, 5)
	for i := range 5 {
		go func() {
			if err := q.acquire(ctx); err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			order <- i
		}()
		waitQueued(t, q, i+1) // arrival order is i's order
	}
	// Each release admits exactly the next in line.
	for want := range 5 {
		q.release()
		select {
		case got := <-order:
			if got != want {
				t.Fatalf("admitted %d, want %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("nobody admitted after release %d", want)
		}
		if r, w := q.queued(); r != 2 || w != 4-want {
			t.Fatalf("after release %d: running %d waiting %d, want 2 and %d", want, r, w, 4-want)
		}
	}
	q.release()
	q.release()
	if r, w := q.queued(); r != 0 || w != 0 {
		t.Fatalf("drained: running %d waiting %d", r, w)
	}
}

func TestWriteQueueBounds(t *testing.T) {
	tests := []struct {
		name    string
		waiting int           // requests already waiting (line of 2)
		maxWait time.Duration // longest wait
		ctx     func() (context.Context, context.CancelFunc)
		want    error
	}{
		{name: "line full", waiting: 2, maxWait: time.Minute, want: errQueueFull},
		{name: "waited too long", waiting: 0, maxWait: 20 * time.Millisecond, want: errQueueTimeout},
		{name: "client gone", waiting: 1, maxWait: time.Minute, want: context.Canceled,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(20*time.Millisecond, cancel)
				return ctx, cancel
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newWriteQueue(1, 2, tt.maxWait)
			if err := q.acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			others := make(chan error, tt.waiting)
			for i := range tt.waiting {
				go func() { others <- q.acquire(context.Background()) }()
				waitQueued(t, q, i+1)
			}
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			if err := q.acquire(ctx); !errors.Is(err, tt.want) {
				t.Fatalf("acquire: %v, want %v", err, tt.want)
			}
			// The refused request left no trace: the others still get
			// their seats one by one, and the queue ends empty.
			for range tt.waiting {
				q.release()
				if err := <-others; err != nil {
					t.Fatalf("waiting request: %v", err)
				}
			}
			q.release()
			if r, w := q.queued(); r != 0 || w != 0 {
				t.Fatalf("end: running %d waiting %d", r, w)
			}
		})
	}
}

// A seat handed over as the wait ends is passed on, not lost.
func TestWriteQueueGrantRace(t *testing.T) {
	q := newWriteQueue(1, 100, time.Minute)
	if err := q.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- q.acquire(ctx) }()
		waitQueued(t, q, 1)
		go cancel()
		q.release()
		if err := <-done; err == nil {
			q.release() // it got the seat: give it back
		}
		if err := q.acquire(context.Background()); err != nil {
			t.Fatalf("seat lost: %v", err)
		}
		cancel()
	}
	q.release()
	if r, w := q.queued(); r != 0 || w != 0 {
		t.Fatalf("end: running %d waiting %d", r, w)
	}
}

func TestQueuedWrite(t *testing.T) {
	loop := context.WithValue(context.Background(), loopbackKey{}, true)
	tests := []struct {
		verb, sub string
		loopback  bool
		want      bool
	}{
		{verb: "create", want: true},
		{verb: "update", want: true},
		{verb: "patch", sub: "status", want: true},
		{verb: "delete", want: true},
		{verb: "deletecollection", want: true},
		{verb: "create", sub: "binding", want: true},
		{verb: "create", loopback: true, want: false},
		{verb: "get", want: false},
		{verb: "list", want: false},
		{verb: "watch", want: false},
		{verb: "create", sub: "exec", want: false},
		{verb: "create", sub: "portforward", want: false},
		{verb: "update", sub: "proxy", want: false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/namespaces/a/pods", nil)
		if tt.loopback {
			r = r.WithContext(loop)
		}
		if got := queuedWrite(r, requestInfo{Verb: tt.verb, Subresource: tt.sub}); got != tt.want {
			t.Errorf("%s %s loopback=%v: %v, want %v", tt.verb, tt.sub, tt.loopback, got, tt.want)
		}
	}
}

// A full line answers 429 with Retry-After and a TooManyRequests Status.
func TestRefuseWrite(t *testing.T) {
	s := &Server{codecs: newCodecs()}
	res := &resource{gr: schema.GroupResource{Resource: "pods"}}
	for _, err := range []error{errQueueFull, errQueueTimeout} {
		w := httptest.NewRecorder()
		s.refuseWrite(w, httptest.NewRequest(http.MethodPost, "/api/v1/namespaces/a/pods", nil), res, err)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
			t.Fatalf("%v: code %d Retry-After %q", err, w.Code, w.Header().Get("Retry-After"))
		}
		if body := w.Body.String(); !strings.Contains(body, `"reason":"TooManyRequests"`) || !strings.Contains(body, err.Error()) {
			t.Fatalf("%v: body %s", err, body)
		}
	}
}

func TestWriteQueueMetrics(t *testing.T) {
	q := newWriteQueue(1, 10, time.Minute)
	reg := prometheus.NewRegistry()
	q.register(reg)
	if err := q.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- q.acquire(context.Background()) }()
	waitQueued(t, q, 1)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		m := f.GetMetric()[0]
		if l := m.GetLabel(); len(l) != 1 || l[0].GetValue() != "mutating" {
			t.Fatalf("%s labels %v", f.GetName(), l)
		}
		got[f.GetName()] = m.GetGauge().GetValue()
	}
	if got["apiserver_current_inflight_requests"] != 1 || got["apiserver_current_inqueue_requests"] != 1 {
		t.Fatalf("gauges %v, want one running and one waiting", got)
	}
	q.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	q.release()
}

// Many requests at once: never more than the limit run, none is lost,
// and the queue ends empty.
func TestWriteQueueConcurrent(t *testing.T) {
	const limit, requests = 3, 400
	q := newWriteQueue(limit, requests, time.Minute)
	var inside, most atomic.Int64
	var wg sync.WaitGroup
	for range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			runtime.Gosched()
			inside.Add(-1)
			q.release()
		}()
	}
	wg.Wait()
	if m := most.Load(); m > limit || m < 1 {
		t.Fatalf("%d ran at once, limit %d", m, limit)
	}
	if r, w := q.queued(); r != 0 || w != 0 {
		t.Fatalf("end: running %d waiting %d", r, w)
	}
}
