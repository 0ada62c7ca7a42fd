package cacher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// Config is one resource's cache.
type Config struct {
	Storage     storage.Interface
	Prefix      string // the resource's key prefix, e.g. "/pods"
	NewFunc     func() runtime.Object
	NewListFunc func() runtime.Object
	GetAttrs    storage.AttrFunc
	Resource    schema.GroupResource
	// EventWindow is how many recent events are kept for watches that
	// start in the past (default 10000).
	EventWindow int
	// BookmarkInterval is how often watchers that asked for bookmarks get
	// one (default 1s).
	BookmarkInterval time.Duration
	// WatcherBuffer bounds the events queued for one watcher (default
	// 1024); see dispatch for what happens when it is full.
	WatcherBuffer int
	Logger        *slog.Logger
	// EncodingBudget bounds the bytes of encodings the cache keeps with
	// its current objects (for watches and lists, see ListCached);
	// default DefaultEncodingBudget, negative keeps none.
	EncodingBudget int64
}

// DefaultEncodingBudget is a resource's default Config.EncodingBudget:
// 10,000 pods in JSON and protobuf, with and without managedFields, take
// about 100 MB.
const DefaultEncodingBudget = 192 << 20

// Validate rejects an incomplete config.
func (c *Config) Validate() error {
	if c.Storage == nil || c.NewFunc == nil || c.NewListFunc == nil || c.Prefix == "" {
		return errors.New("cacher: Storage, Prefix, NewFunc and NewListFunc are required")
	}
	return nil
}

type event struct {
	typ  watch.EventType
	key  string
	obj  runtime.Object // new state (DELETED: last state)
	prev runtime.Object // state before, nil for ADDED
	rev  int64
	// shared is obj as every watcher of the live stream gets it, encoded
	// at most once per format; replays from the window wrap obj afresh.
	shared *cachingObject
}

// Cacher serves reads from memory and passes writes through.
type Cacher struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan struct{}

	mu       sync.RWMutex
	changed  *sync.Cond                // broadcast when rev moves
	items    map[string]*cachingObject // current objects with their encodings
	rev      int64
	events   []event // ring buffer of the last EventWindow events
	head     int     // index of the oldest event in events
	count    int     // events held
	oldest   int64   // every event after this revision is held
	watchers map[*cacheWatcher]struct{}

	// budget is the time dispatch may wait, in total, for watchers whose
	// buffers are full before ending them.
	budget *timeBudget
	// encBudget counts the encodings items keep.
	encBudget *encodingBudget
}

var _ storage.Interface = (*Cacher)(nil)

// New starts filling the cache; Ready is closed once it holds the store's
// state.
func New(ctx context.Context, cfg Config) (*Cacher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.EventWindow <= 0 {
		cfg.EventWindow = 10000
	}
	if cfg.BookmarkInterval <= 0 {
		cfg.BookmarkInterval = time.Second
	}
	if cfg.WatcherBuffer <= 0 {
		cfg.WatcherBuffer = watcherBuffer
	}
	if cfg.EncodingBudget == 0 {
		cfg.EncodingBudget = DefaultEncodingBudget
	}
	if cfg.GetAttrs == nil {
		cfg.GetAttrs = func(obj runtime.Object) (l labels.Set, f fields.Set, err error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, nil, err
			}
			l, f = registry.DefaultAttrs(m)
			return l, f, nil
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &Cacher{cfg: cfg, log: log, ctx: cctx, cancel: cancel, ready: make(chan struct{}),
		items: map[string]*cachingObject{}, watchers: map[*cacheWatcher]struct{}{}, budget: newTimeBudget(),
		encBudget: &encodingBudget{limit: cfg.EncodingBudget}}
	c.changed = sync.NewCond(c.mu.RLocker())
	go c.run()
	go c.bookmarks()
	return c, nil
}

// Ready is closed when the initial list is loaded.
func (c *Cacher) Ready() <-chan struct{} { return c.ready }

// Stop ends the cache and every watch it serves.
func (c *Cacher) Stop() {
	c.cancel()
	c.mu.Lock()
	for w := range c.watchers {
		w.stopLocked()
	}
	c.mu.Unlock()
	c.changed.Broadcast()
}

func (c *Cacher) listPrefix() string { return c.cfg.Prefix + "/" }

// run keeps the cache in sync: list, then watch from the list's revision;
// after any break, list again.
func (c *Cacher) run() {
	backoff := 100 * time.Millisecond
	for c.ctx.Err() == nil {
		err := c.syncOnce()
		if c.ctx.Err() != nil {
			return
		}
		c.log.Warn("watch cache resyncing", "resource", c.cfg.Resource.String(), "err", err)
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (c *Cacher) syncOnce() error {
	list := c.cfg.NewListFunc()
	if err := c.cfg.Storage.GetList(c.ctx, c.listPrefix(), storage.ListOptions{Recursive: true}, list); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return err
	}
	rev, err := strconv.ParseInt(lm.GetResourceVersion(), 10, 64)
	if err != nil {
		return fmt.Errorf("list resourceVersion: %w", err)
	}
	objs, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	w, err := c.cfg.Storage.Watch(c.ctx, c.listPrefix(), storage.ListOptions{Recursive: true, ResourceVersion: lm.GetResourceVersion(), ProgressNotify: true})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()
	c.mu.Lock()
	for _, o := range c.items {
		o.release()
	}
	c.items = make(map[string]*cachingObject, len(objs))
	for _, o := range objs {
		c.items[c.keyOf(o)] = newHeldObject(o, c.encBudget)
	}
	// Watchers cannot be told what happened in the gap: end them, they
	// re-watch from their last revision (or re-list on 410).
	for cw := range c.watchers {
		cw.stopLocked()
	}
	c.rev, c.oldest = rev, rev
	c.events, c.head, c.count = nil, 0, 0
	c.mu.Unlock()
	c.changed.Broadcast()
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Error:
			return fmt.Errorf("watch error: %v", ev.Object)
		case watch.Bookmark:
			if r, err := objRev(ev.Object); err == nil {
				c.advance(r)
			}
		case watch.Added, watch.Modified, watch.Deleted:
			if err := c.apply(ev); err != nil {
				return err
			}
		}
	}
	return errors.New("watch closed")
}

func objRev(obj runtime.Object) (int64, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(m.GetResourceVersion(), 10, 64)
}

func (c *Cacher) keyOf(obj runtime.Object) string {
	m, _ := meta.Accessor(obj)
	if ns := m.GetNamespace(); ns != "" {
		return c.cfg.Prefix + "/" + ns + "/" + m.GetName()
	}
	return c.cfg.Prefix + "/" + m.GetName()
}

func (c *Cacher) advance(rev int64) {
	c.mu.Lock()
	if rev > c.rev {
		c.rev = rev
	}
	c.mu.Unlock()
	c.changed.Broadcast()
}

// apply records one change and hands it to the watchers.
func (c *Cacher) apply(ev watch.Event) error {
	rev, err := objRev(ev.Object)
	if err != nil {
		return err
	}
	key := c.keyOf(ev.Object)
	c.mu.Lock()
	held := c.items[key]
	var prev runtime.Object
	if held != nil {
		prev = held.obj
		held.release()
	}
	e := event{typ: ev.Type, key: key, obj: ev.Object, prev: prev, rev: rev}
	if ev.Type == watch.Deleted {
		e.shared = newCachingObject(ev.Object)
		delete(c.items, key)
	} else {
		// The item and the event share the object and its encodings:
		// what the watchers encode, lists reuse while it is current.
		e.shared = newHeldObject(ev.Object, c.encBudget)
		c.items[key] = e.shared
		if prev == nil {
			e.typ = watch.Added
		} else {
			e.typ = watch.Modified
		}
	}
	window := e
	window.shared = nil // the window keeps the object, not its encodings
	c.pushEvent(window)
	if rev > c.rev {
		c.rev = rev
	}
	var blocked []pendingSend
	for w := range c.watchers {
		if ev, queued := w.dispatchLocked(e); !queued {
			blocked = append(blocked, pendingSend{w, ev})
		}
	}
	c.mu.Unlock()
	c.changed.Broadcast()
	if len(blocked) > 0 {
		// apply runs on the one goroutine that feeds the cache, so the
		// next event waits for this one to reach every watcher.
		c.sendBlocked(blocked)
	}
	return nil
}

// pushEvent appends to the ring, dropping the oldest event when full.
func (c *Cacher) pushEvent(e event) {
	if len(c.events) < c.cfg.EventWindow {
		// Grow on demand: most resources never fill the window.
		c.events = append(c.events, e)
		c.count++
		return
	}
	if c.count == len(c.events) {
		c.oldest = c.events[c.head].rev
		c.events[c.head] = e
		c.head = (c.head + 1) % len(c.events)
		return
	}
	c.events[(c.head+c.count)%len(c.events)] = e
	c.count++
}

// eachEvent calls f for the held events, oldest first.
func (c *Cacher) eachEvent(f func(e event)) {
	for i := 0; i < c.count; i++ {
		f(c.events[(c.head+i)%len(c.events)])
	}
}

// waitFor blocks until the cache has seen rev (or the timeout).
func (c *Cacher) waitFor(ctx context.Context, rev int64, key string) error {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	deadline := time.Now().Add(3 * time.Second)
	timer := time.AfterFunc(3*time.Second, c.changed.Broadcast)
	defer timer.Stop()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.rev < rev {
		// Changes to other resources move etcd's revision without an
		// event here: ask the store for a progress bookmark meanwhile.
		done := make(chan struct{})
		defer close(done)
		go c.requestProgress(done)
	}
	for c.rev < rev {
		if time.Now().After(deadline) || ctx.Err() != nil || c.ctx.Err() != nil {
			return &storage.KeyError{Err: storage.ErrTooLargeResourceVersion, Key: key, ResourceVersion: c.rev,
				Msg: fmt.Sprintf("requested %d, cache at %d", rev, c.rev)}
		}
		c.changed.Wait()
	}
	return nil
}

// progressRequester is a store that can report its watches' progress.
type progressRequester interface {
	RequestProgress(ctx context.Context) error
}

func (c *Cacher) requestProgress(done <-chan struct{}) {
	pr, ok := c.cfg.Storage.(progressRequester)
	if !ok {
		return
	}
	for {
		_ = pr.RequestProgress(c.ctx)
		select {
		case <-done:
			return
		case <-c.ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func parseRV(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, &storage.KeyError{Err: storage.ErrInvalidResourceVersion, Msg: s}
	}
	return n, nil
}

// Writes and exact reads go to the store.

func (c *Cacher) Create(ctx context.Context, key string, obj, out runtime.Object) error {
	return c.cfg.Storage.Create(ctx, key, obj, out)
}

func (c *Cacher) GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool, pre *storage.Preconditions, try storage.UpdateFunc) error {
	if s, ok := c.cfg.Storage.(suggestingUpdater); ok {
		c.mu.RLock()
		held, found := c.items[key]
		c.mu.RUnlock()
		if found {
			// As upstream's cacher: the store starts from a copy of the
			// cached object and reads etcd only if it turns out stale.
			return s.GuaranteedUpdateFrom(ctx, key, out, ignoreNotFound, pre, try, held.obj.DeepCopyObject())
		}
	}
	return c.cfg.Storage.GuaranteedUpdate(ctx, key, out, ignoreNotFound, pre, try)
}

func (c *Cacher) Delete(ctx context.Context, key string, out runtime.Object, pre *storage.Preconditions, validate storage.ValidateObjectFunc) error {
	return c.cfg.Storage.Delete(ctx, key, out, pre, validate)
}

func (c *Cacher) Count(ctx context.Context, prefix string) (int64, error) {
	return c.cfg.Storage.Count(ctx, prefix)
}

func (c *Cacher) CurrentRevision(ctx context.Context) (int64, error) {
	return c.cfg.Storage.CurrentRevision(ctx)
}

// Get at "" reads the store (the latest state); at "0" or N, the cache.
func (c *Cacher) Get(ctx context.Context, key string, opts storage.GetOptions, out runtime.Object) error {
	if opts.ResourceVersion == "" {
		return c.cfg.Storage.Get(ctx, key, opts, out)
	}
	rev, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, rev, key); err != nil {
		return err
	}
	c.mu.RLock()
	held, ok := c.items[key]
	cur := c.rev
	c.mu.RUnlock()
	if !ok {
		if opts.IgnoreNotFound {
			m, _ := meta.Accessor(out)
			m.SetResourceVersion(strconv.FormatInt(cur, 10))
			return nil
		}
		return storage.NewNotFound(key)
	}
	return copyInto(held.obj, out)
}

// suggestingUpdater is a store whose updates can start from the cached
// object (the etcd store).
type suggestingUpdater interface {
	GuaranteedUpdateFrom(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
		pre *storage.Preconditions, tryUpdate storage.UpdateFunc, suggestion runtime.Object) error
}

// Peek calls f with the cached object at key, shared with every reader:
// f must not change it nor keep it. It reports false, without calling f,
// when the cache has no object there (it may be younger than the cache).
// Admission checks that read a field or two use it instead of Get's deep
// copy.
func (c *Cacher) Peek(key string, f func(runtime.Object)) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	held, ok := c.items[key]
	if ok {
		f(held.obj)
	}
	return ok
}

// copyInto deep-copies src into dst, which must be of the same type.
func copyInto(src, dst runtime.Object) error {
	sv, dv := reflect.ValueOf(src.DeepCopyObject()), reflect.ValueOf(dst)
	if sv.Type() != dv.Type() || dv.Kind() != reflect.Pointer {
		return fmt.Errorf("cacher: cannot copy %T into %T", src, dst)
	}
	dv.Elem().Set(sv.Elem())
	return nil
}

// GetList serves from memory. A consistent read ("") first asks the store
// for its current revision and waits until the cache has caught up.
func (c *Cacher) GetList(ctx context.Context, prefix string, opts storage.ListOptions, listObj runtime.Object) error {
	page, ok, err := c.ListCached(ctx, prefix, opts)
	if err != nil {
		return err
	}
	if !ok {
		return c.cfg.Storage.GetList(ctx, prefix, opts, listObj)
	}
	items := make([]runtime.Object, len(page.Items))
	for i, it := range page.Items {
		// No deep copy: SetList copies each object's top-level struct
		// into the typed list, and callers only read what lists share
		// below it.
		items[i] = it.(*cachingObject).obj
	}
	if err := meta.SetList(listObj, items); err != nil {
		return err
	}
	lm, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(page.ResourceVersion)
	lm.SetContinue(page.Continue)
	lm.SetRemainingItemCount(page.RemainingItemCount)
	return nil
}

// CachedList is a page of a list served from the cache.
type CachedList struct {
	// Items are the cache's current objects, shared with every reader:
	// each is a runtime.CacheableObject whose encodings are kept with it
	// (within the cache's budget), so encoding a list of them repeats
	// little work. Readers must not change them.
	Items              []runtime.Object
	ResourceVersion    string
	Continue           string
	RemainingItemCount *int64
}

// ListCached is GetList without the typed list: the page's objects as
// the cache holds them, for an encoder that splices their encodings. ok
// is false (and nothing else set) when the list must come from the store
// (a continue token, resourceVersionMatch=Exact, a prefix outside the
// cache, or a consistent read the cache could not catch up with).
func (c *Cacher) ListCached(ctx context.Context, prefix string, opts storage.ListOptions) (page *CachedList, ok bool, err error) {
	if opts.Predicate.Continue != "" || opts.ResourceVersionMatch == "Exact" || !strings.HasPrefix(prefix, c.listPrefix()) {
		return nil, false, nil
	}
	want, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, false, err
	}
	if opts.ResourceVersion == "" {
		if want, err = c.cfg.Storage.CurrentRevision(ctx); err != nil {
			return nil, false, err
		}
	}
	if err := c.waitFor(ctx, want, prefix); err != nil {
		if opts.ResourceVersion == "" {
			return nil, false, nil
		}
		return nil, false, err
	}
	c.mu.RLock()
	rev := c.rev
	keys := make([]string, 0, len(c.items))
	for k := range c.items {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	items := make([]runtime.Object, 0, len(keys))
	var lastKey string
	more := false
	for _, k := range keys {
		held := c.items[k]
		if ok, err := c.matches(opts.Predicate, held.obj); err != nil {
			c.mu.RUnlock()
			return nil, false, err
		} else if !ok {
			continue
		}
		if opts.Predicate.Limit > 0 && int64(len(items)) >= opts.Predicate.Limit {
			more = true
			break
		}
		items = append(items, held)
		lastKey = k
	}
	remaining := int64(0)
	if more && opts.Predicate.Empty() {
		remaining = int64(len(keys) - sort.SearchStrings(keys, lastKey) - 1)
	}
	c.mu.RUnlock()
	page = &CachedList{Items: items, ResourceVersion: strconv.FormatInt(rev, 10)}
	if more {
		tok, err := json.Marshal(map[string]interface{}{"v": "meta.k8s.io/v1", "rv": rev, "start": strings.TrimPrefix(lastKey, prefix) + "\x00"})
		if err != nil {
			return nil, false, err
		}
		page.Continue = base64.RawURLEncoding.EncodeToString(tok)
		if remaining > 0 {
			page.RemainingItemCount = &remaining
		}
	}
	return page, true, nil
}

func (c *Cacher) matches(p storage.SelectionPredicate, obj runtime.Object) (bool, error) {
	if p.Empty() {
		return true, nil
	}
	attrs := p.GetAttrs
	if attrs == nil {
		attrs = c.cfg.GetAttrs
	}
	l, f, err := attrs(obj)
	if err != nil {
		return false, err
	}
	return (p.Label == nil || p.Label.Matches(l)) && (p.Field == nil || p.Field.Matches(f)), nil
}
