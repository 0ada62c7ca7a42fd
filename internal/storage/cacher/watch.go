package cacher

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/storage"
)

// watcherBuffer bounds the events queued for one watcher by default.
const watcherBuffer = 1024

type cacheWatcher struct {
	c         *Cacher
	key       string // exact key, or a prefix when recursive
	recursive bool
	pred      storage.SelectionPredicate
	bookmarks bool
	input     chan watch.Event
	result    chan watch.Event
	done      chan struct{}
	once      sync.Once
}

func (w *cacheWatcher) ResultChan() <-chan watch.Event { return w.result }

func (w *cacheWatcher) Stop() {
	w.c.mu.Lock()
	w.stopLocked()
	w.c.mu.Unlock()
}

// stopLocked ends the watcher; c.mu must be held.
func (w *cacheWatcher) stopLocked() {
	w.once.Do(func() {
		delete(w.c.watchers, w)
		close(w.done)
	})
}

func (w *cacheWatcher) wantsKey(key string) bool {
	if w.recursive {
		return strings.HasPrefix(key, w.key)
	}
	return key == w.key
}

// translate applies the watcher's selection to an event: an object
// entering the selection is ADDED, leaving it DELETED.
func (w *cacheWatcher) translate(e event) (watch.Event, bool) {
	if !w.wantsKey(e.key) {
		return watch.Event{}, false
	}
	cur, _ := w.c.matches(w.pred, e.obj)
	prev := false
	if e.prev != nil {
		prev, _ = w.c.matches(w.pred, e.prev)
	}
	var obj runtime.Object = e.shared
	if e.shared == nil {
		obj = newCachingObject(e.obj)
	}
	switch {
	case e.typ == watch.Deleted:
		if !cur {
			return watch.Event{}, false
		}
		return watch.Event{Type: watch.Deleted, Object: obj}, true
	case cur && prev:
		return watch.Event{Type: watch.Modified, Object: obj}, true
	case cur:
		return watch.Event{Type: watch.Added, Object: obj}, true
	case prev:
		return watch.Event{Type: watch.Deleted, Object: obj}, true
	}
	return watch.Event{}, false
}

// dispatchLocked queues an event without blocking; c.mu must be held.
// When the watcher's buffer is full it returns the event and false.
func (w *cacheWatcher) dispatchLocked(e event) (watch.Event, bool) {
	ev, ok := w.translate(e)
	if !ok {
		return watch.Event{}, true
	}
	select {
	case w.input <- ev:
		return watch.Event{}, true
	case <-w.done:
		return watch.Event{}, true
	default:
		return ev, false
	}
}

// pendingSend is an event a watcher's full buffer did not take.
type pendingSend struct {
	w  *cacheWatcher
	ev watch.Event
}

// sendBlocked waits, as upstream's cacher does, up to the time left in the
// shared budget for watchers whose buffers were full; those still full
// then are ended (their clients re-watch from their last revision, or
// re-list on 410), so one slow client cannot hold everyone back for long.
func (c *Cacher) sendBlocked(blocked []pendingSend) {
	allowed := c.budget.take()
	start := time.Now()
	timer := time.NewTimer(allowed)
	defer timer.Stop()
	expired := allowed <= 0
	for _, b := range blocked {
		if !expired {
			select {
			case b.w.input <- b.ev:
				continue
			case <-b.w.done:
				continue
			case <-timer.C:
				expired = true
			}
		}
		select { // out of time: only what fits now
		case b.w.input <- b.ev:
		case <-b.w.done:
		default:
			c.log.Warn("ending a watcher that does not keep up", "resource", c.cfg.Resource.String(), "buffer", cap(b.w.input))
			b.w.Stop()
		}
	}
	c.budget.giveBack(allowed - time.Since(start))
}

// timeBudget is time to spend waiting: it refills at refill per second up
// to max (upstream: 50 ms per second, at most 100 ms).
type timeBudget struct {
	mu          sync.Mutex
	left        time.Duration
	last        time.Time
	refill, max time.Duration
}

func newTimeBudget() *timeBudget {
	return &timeBudget{left: 100 * time.Millisecond, last: time.Now(), refill: 50 * time.Millisecond, max: 100 * time.Millisecond}
}

// take returns all the budget there is now.
func (b *timeBudget) take() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.left = min(b.max, b.left+time.Duration(float64(b.refill)*now.Sub(b.last).Seconds()))
	b.last = now
	t := b.left
	b.left = 0
	return t
}

// giveBack returns what was not used.
func (b *timeBudget) giveBack(d time.Duration) {
	if d <= 0 {
		return
	}
	b.mu.Lock()
	b.left = min(b.max, b.left+d)
	b.mu.Unlock()
}

// run copies events to the result channel. Objects of changes are shared
// by every watcher as a cachingObject (read-only, encoded once).
func (w *cacheWatcher) run(initial []watch.Event) {
	defer close(w.result)
	send := func(ev watch.Event) bool {
		select {
		case w.result <- ev:
			return true
		case <-w.done:
			return false
		}
	}
	for _, ev := range initial {
		if !send(ev) {
			return
		}
	}
	for {
		select {
		case ev := <-w.input:
			if !send(ev) {
				return
			}
		case <-w.done:
			return
		}
	}
}

// Watch serves from the cache: the current state first for "" and "0" (or
// sendInitialEvents), or the buffered changes after a revision.
func (c *Cacher) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	rev, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if opts.ResourceVersion == "" {
		// "Most recent": at least what the store has committed now.
		cur, err := c.cfg.Storage.CurrentRevision(ctx)
		if err != nil {
			return nil, err
		}
		if err := c.waitFor(ctx, cur, key); err != nil {
			return nil, err
		}
	} else if rev > 0 {
		if err := c.waitFor(ctx, rev, key); err != nil {
			return nil, err
		}
	} else {
		select {
		case <-c.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	w := &cacheWatcher{c: c, key: key, recursive: opts.Recursive, pred: opts.Predicate, bookmarks: opts.ProgressNotify,
		input: make(chan watch.Event, c.cfg.WatcherBuffer), result: make(chan watch.Event, 16), done: make(chan struct{})}
	if w.recursive && !strings.HasSuffix(w.key, "/") {
		w.key += "/"
	}
	sendInitial := opts.SendInitialEvents != nil && *opts.SendInitialEvents
	var initial []watch.Event

	c.mu.Lock()
	switch {
	case sendInitial || opts.ResourceVersion == "" || opts.ResourceVersion == "0":
		keys := make([]string, 0, len(c.items))
		for k := range c.items {
			if w.wantsKey(k) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys) // the current state in key order, as a list would give it
		for _, k := range keys {
			if held := c.items[k]; held != nil {
				if ok, _ := c.matches(w.pred, held.obj); ok {
					initial = append(initial, watch.Event{Type: watch.Added, Object: held})
				}
			}
		}
		if sendInitial {
			b := c.cfg.NewFunc()
			m, _ := meta.Accessor(b)
			m.SetResourceVersion(strconv.FormatInt(c.rev, 10))
			m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
			initial = append(initial, watch.Event{Type: watch.Bookmark, Object: b})
		}
	case rev < c.oldest:
		cur, oldest := c.rev, c.oldest-1
		c.mu.Unlock()
		return nil, storage.NewTooOldResourceVersion(key, rev, oldest, cur)
	default:
		c.eachEvent(func(e event) {
			if e.rev <= rev {
				return
			}
			if ev, ok := w.translate(e); ok {
				initial = append(initial, ev)
			}
		})
	}
	c.watchers[w] = struct{}{}
	c.mu.Unlock()

	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-w.done:
		}
	}()
	go w.run(initial)
	return w, nil
}

// bookmarks periodically tells watchers that asked how far the cache is.
func (c *Cacher) bookmarks() {
	t := time.NewTicker(c.cfg.BookmarkInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		rev := c.rev
		for w := range c.watchers {
			if !w.bookmarks {
				continue
			}
			b := c.cfg.NewFunc()
			m, _ := meta.Accessor(b)
			m.SetResourceVersion(strconv.FormatInt(rev, 10))
			select {
			case w.input <- watch.Event{Type: watch.Bookmark, Object: b}:
			default:
			}
		}
		c.mu.Unlock()
	}
}

var _ watch.Interface = (*cacheWatcher)(nil)
