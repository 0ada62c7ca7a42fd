package etcd

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// watchChanSize bounds each watcher's queue of decoded events.
const watchChanSize = 100

func defaultAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, err
	}
	l, f := registry.DefaultAttrs(m)
	return l, f, nil
}

type watcher struct {
	s      *store
	ctx    context.Context
	cancel context.CancelFunc
	result chan watch.Event
	once   sync.Once
}

func (w *watcher) Stop()                          { w.cancel() }
func (w *watcher) ResultChan() <-chan watch.Event { return w.result }

func (s *store) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	rev, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	k := s.full(key)
	if opts.Recursive && !strings.HasSuffix(k, "/") {
		k += "/"
	}
	initial := opts.ResourceVersion == "" || opts.ResourceVersion == "0" || (opts.SendInitialEvents != nil && *opts.SendInitialEvents)
	var snapshot []*eventObj
	startRev := rev
	if initial {
		getOpts := []clientv3.OpOption{}
		if opts.Recursive {
			getOpts = append(getOpts, clientv3.WithPrefix())
		}
		resp, err := s.client.Get(ctx, k, getOpts...)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", key, err)
		}
		startRev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			obj := s.newFn()
			if err := s.decode(kv.Value, obj, kv.ModRevision); err != nil {
				return nil, err
			}
			if ok, err := matches(opts.Predicate, obj); err != nil {
				return nil, err
			} else if ok {
				snapshot = append(snapshot, &eventObj{typ: watch.Added, obj: obj})
			}
		}
	} else {
		cur, err := s.CurrentRevision(ctx)
		if err != nil {
			return nil, err
		}
		if rev > cur {
			if err := s.waitForRevision(ctx, key, rev); err != nil {
				return nil, err
			}
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{s: s, ctx: wctx, cancel: cancel, result: make(chan watch.Event, watchChanSize)}
	wopts := []clientv3.OpOption{clientv3.WithRev(startRev + 1), clientv3.WithPrevKV()}
	if opts.Recursive {
		wopts = append(wopts, clientv3.WithPrefix())
	}
	if opts.ProgressNotify {
		wopts = append(wopts, clientv3.WithProgressNotify())
	}
	// The watch context must carry gRPC metadata that keeps our stream
	// separate from other watchers with the same options.
	wch := s.client.Watch(clientv3.WithRequireLeader(wctx), k, wopts...)
	go w.run(wch, snapshot, startRev, opts)
	return w, nil
}

type eventObj struct {
	typ watch.EventType
	obj runtime.Object
}

func (w *watcher) send(ev watch.Event) bool {
	select {
	case w.result <- ev:
		return true
	case <-w.ctx.Done():
		return false
	}
}

func (w *watcher) run(wch clientv3.WatchChan, snapshot []*eventObj, startRev int64, opts storage.ListOptions) {
	defer close(w.result)
	defer w.cancel()
	for _, e := range snapshot {
		if !w.send(watch.Event{Type: e.typ, Object: e.obj}) {
			return
		}
	}
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		b := w.s.bookmark(startRev)
		m, _ := meta.Accessor(b)
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		if !w.send(watch.Event{Type: watch.Bookmark, Object: b}) {
			return
		}
	}
	for resp := range wch {
		if resp.CompactRevision != 0 {
			w.send(watch.Event{Type: watch.Error, Object: &metav1.Status{
				Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonExpired,
				Message: fmt.Sprintf("The resourceVersion for the provided watch is too old. (requested %d, compacted to %d)", startRev, resp.CompactRevision),
			}})
			return
		}
		if err := resp.Err(); err != nil {
			if w.ctx.Err() == nil {
				w.send(watch.Event{Type: watch.Error, Object: &metav1.Status{
					Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Reason: metav1.StatusReasonInternalError,
					Message: "watch stream: " + err.Error(),
				}})
			}
			return
		}
		if resp.IsProgressNotify() {
			if opts.ProgressNotify {
				if !w.send(watch.Event{Type: watch.Bookmark, Object: w.s.bookmark(resp.Header.Revision)}) {
					return
				}
			}
			continue
		}
		for _, ev := range resp.Events {
			out, ok, err := w.translate(ev, opts.Predicate)
			if err != nil {
				w.send(watch.Event{Type: watch.Error, Object: &metav1.Status{
					Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Reason: metav1.StatusReasonInternalError, Message: err.Error(),
				}})
				return
			}
			if ok && !w.send(out) {
				return
			}
		}
	}
}

// translate turns an etcd event into a watch event for this selection:
// an object entering the selection is ADDED, leaving it DELETED.
func (w *watcher) translate(ev *clientv3.Event, p storage.SelectionPredicate) (watch.Event, bool, error) {
	s := w.s
	rev := ev.Kv.ModRevision
	var cur, prev runtime.Object
	if ev.Type == clientv3.EventTypePut {
		cur = s.newFn()
		if err := s.decode(ev.Kv.Value, cur, rev); err != nil {
			return watch.Event{}, false, err
		}
	}
	// The previous state is decoded only when it is sent (DELETED) or
	// tested against a selector: an unfiltered watch of a change needs
	// to know only that there was one.
	if ev.PrevKv != nil && (ev.Type == clientv3.EventTypeDelete || !p.Empty()) {
		prev = s.newFn()
		if err := s.decode(ev.PrevKv.Value, prev, rev); err != nil {
			return watch.Event{}, false, err
		}
	}
	curOK, prevOK := cur != nil, prev != nil || ev.PrevKv != nil
	var err error
	if curOK {
		if curOK, err = matches(p, cur); err != nil {
			return watch.Event{}, false, err
		}
	}
	if prev != nil {
		if prevOK, err = matches(p, prev); err != nil {
			return watch.Event{}, false, err
		}
	}
	switch {
	case ev.Type == clientv3.EventTypeDelete:
		if !prevOK {
			return watch.Event{}, false, nil
		}
		return watch.Event{Type: watch.Deleted, Object: prev}, true, nil
	case curOK && prevOK:
		return watch.Event{Type: watch.Modified, Object: cur}, true, nil
	case curOK:
		return watch.Event{Type: watch.Added, Object: cur}, true, nil
	case prevOK:
		// Left the selection: upstream sends the new state as DELETED.
		return watch.Event{Type: watch.Deleted, Object: cur}, true, nil
	}
	return watch.Event{}, false, nil
}

// bookmark is an empty object carrying only a resourceVersion.
func (s *store) bookmark(rev int64) runtime.Object {
	obj := s.newFn()
	m, _ := meta.Accessor(obj)
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	return obj
}

// RequestProgress asks etcd to tell every watch of this client how far it
// is (a progress notification, turned into a BOOKMARK for watches with
// ProgressNotify). The watch cache uses it to catch up with the current
// revision without waiting for the next change.
func (s *store) RequestProgress(ctx context.Context) error {
	return s.client.RequestProgress(clientv3.WithRequireLeader(ctx))
}
