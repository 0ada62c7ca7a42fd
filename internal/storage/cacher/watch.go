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

// watcherBuffer bounds the events queued for one watcher; a watcher that
// falls this far behind is ended (its client re-watches from its last
// revision) instead of slowing everyone else.
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
func (w *cacheWatcher) dispatchLocked(e event) {
	ev, ok := w.translate(e)
	if !ok {
		return
	}
	select {
	case w.input <- ev:
	default:
		w.stopLocked()
	}
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
		input: make(chan watch.Event, watcherBuffer), result: make(chan watch.Event, 16), done: make(chan struct{})}
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
			if ok, _ := c.matches(w.pred, c.items[k]); ok {
				initial = append(initial, watch.Event{Type: watch.Added, Object: newCachingObject(c.items[k])})
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
