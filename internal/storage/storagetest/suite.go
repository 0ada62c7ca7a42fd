package storagetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/storage"
)

// Factory makes stores for the suite.
type Factory struct {
	// New returns a fresh, empty store of *corev1.Pod objects (list type
	// *corev1.PodList) under its own prefix.
	New func(t *testing.T) storage.Interface
	// Compact compacts the backing store up to rev; nil skips the 410 tests.
	Compact func(t *testing.T, rev int64)
}

// RunTests runs every conformance test against stores from f.
func RunTests(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f Factory)
	}{
		{"CreateGet", testCreateGet},
		{"GuaranteedUpdate", testGuaranteedUpdate},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Preconditions", testPreconditions},
		{"Delete", testDelete},
		{"ListPaging", testListPaging},
		{"ListPredicate", testListPredicate},
		{"WatchFromNow", testWatchFromNow},
		{"WatchFromRevision", testWatchFromRevision},
		{"WatchSingleKey", testWatchSingleKey},
		{"WatchSelectionTransitions", testWatchSelectionTransitions},
		{"WatchInitialEventsBookmark", testWatchInitialEvents},
		{"Expired", testExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, f) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func pod(ns, name string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: lbls},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
}

func key(ns, name string) string { return "/pods/" + ns + "/" + name }

func rv(t *testing.T, obj runtime.Object) int64 {
	t.Helper()
	m, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", m.GetResourceVersion(), err)
	}
	return n
}

func mustCreate(t *testing.T, s storage.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	out := &corev1.Pod{}
	if err := s.Create(ctx(t), key(p.Namespace, p.Name), p, out); err != nil {
		t.Fatalf("create %s: %v", p.Name, err)
	}
	return out
}

func testCreateGet(t *testing.T, f Factory) {
	s := f.New(t)
	out := mustCreate(t, s, pod("ns", "a", nil))
	if rv(t, out) == 0 {
		t.Fatal("created object has no resourceVersion")
	}
	if err := s.Create(ctx(t), key("ns", "a"), pod("ns", "a", nil), &corev1.Pod{}); !storage.IsExists(err) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	got := &corev1.Pod{}
	if err := s.Get(ctx(t), key("ns", "a"), storage.GetOptions{}, got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "a" || got.ResourceVersion != out.ResourceVersion || got.Spec.Containers[0].Image != "i" {
		t.Fatalf("get returned %+v", got)
	}
	if err := s.Get(ctx(t), key("ns", "missing"), storage.GetOptions{}, &corev1.Pod{}); !storage.IsNotFound(err) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	if err := s.Get(ctx(t), key("ns", "missing"), storage.GetOptions{IgnoreNotFound: true}, &corev1.Pod{}); err != nil {
		t.Fatalf("get missing with IgnoreNotFound: %v", err)
	}
	withRV := pod("ns", "b", nil)
	withRV.ResourceVersion = "5"
	if err := s.Create(ctx(t), key("ns", "b"), withRV, &corev1.Pod{}); err == nil {
		t.Fatal("create with a resourceVersion succeeded")
	}
	// out may be obj: it gets the write's resourceVersion.
	same := pod("ns", "c", nil)
	if err := s.Create(ctx(t), key("ns", "c"), same, same); err != nil {
		t.Fatal(err)
	}
	stored := &corev1.Pod{}
	if err := s.Get(ctx(t), key("ns", "c"), storage.GetOptions{}, stored); err != nil {
		t.Fatal(err)
	}
	if rv(t, same) <= rv(t, out) || same.ResourceVersion != stored.ResourceVersion || !apiequality.Semantic.DeepEqual(same, stored) {
		t.Fatalf("create into obj gave %+v, stored %+v", same, stored)
	}
	n, err := s.Count(ctx(t), "/pods")
	if err != nil || n != 2 {
		t.Fatalf("count = %d, %v; want 2", n, err)
	}
	cur, err := s.CurrentRevision(ctx(t))
	if err != nil || cur < rv(t, out) {
		t.Fatalf("current revision %d (%v) older than the write %d", cur, err, rv(t, out))
	}
}

func testGuaranteedUpdate(t *testing.T, f Factory) {
	s := f.New(t)
	created := mustCreate(t, s, pod("ns", "a", nil))
	out := &corev1.Pod{}
	err := s.GuaranteedUpdate(ctx(t), key("ns", "a"), out, false, nil, func(cur runtime.Object) (runtime.Object, error) {
		p := cur.(*corev1.Pod).DeepCopy()
		p.Labels = map[string]string{"x": "y"}
		return p, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Labels["x"] != "y" || rv(t, out) <= rv(t, created) {
		t.Fatalf("updated object %+v (rv %s, created rv %s)", out.ObjectMeta, out.ResourceVersion, created.ResourceVersion)
	}
	if stored := (&corev1.Pod{}); s.Get(ctx(t), key("ns", "a"), storage.GetOptions{}, stored) != nil || !apiequality.Semantic.DeepEqual(out, stored) {
		t.Fatalf("updated object %+v, stored %+v", out, stored)
	}
	// An update that changes nothing writes nothing.
	same := &corev1.Pod{}
	err = s.GuaranteedUpdate(ctx(t), key("ns", "a"), same, false, nil, func(cur runtime.Object) (runtime.Object, error) { return cur, nil })
	if err != nil || same.ResourceVersion != out.ResourceVersion {
		t.Fatalf("no-op update changed rv %s -> %s (%v)", out.ResourceVersion, same.ResourceVersion, err)
	}
	// Missing key: NotFound, or create with ignoreNotFound.
	err = s.GuaranteedUpdate(ctx(t), key("ns", "missing"), &corev1.Pod{}, false, nil, func(cur runtime.Object) (runtime.Object, error) { return cur, nil })
	if !storage.IsNotFound(err) {
		t.Fatalf("update missing: %v", err)
	}
	made := &corev1.Pod{}
	err = s.GuaranteedUpdate(ctx(t), key("ns", "new"), made, true, nil, func(cur runtime.Object) (runtime.Object, error) {
		return pod("ns", "new", nil), nil
	})
	if err != nil || made.Name != "new" {
		t.Fatalf("create through update: %v %+v", err, made.ObjectMeta)
	}
	// tryUpdate errors abort.
	boom := errors.New("boom")
	err = s.GuaranteedUpdate(ctx(t), key("ns", "a"), &corev1.Pod{}, false, nil, func(runtime.Object) (runtime.Object, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("tryUpdate error: %v", err)
	}
}

func testConcurrentUpdates(t *testing.T, f Factory) {
	s := f.New(t)
	mustCreate(t, s, pod("ns", "a", map[string]string{"n": "0"}))
	const workers = 10
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.GuaranteedUpdate(context.Background(), key("ns", "a"), &corev1.Pod{}, false, nil, func(cur runtime.Object) (runtime.Object, error) {
				p := cur.(*corev1.Pod).DeepCopy()
				n, _ := strconv.Atoi(p.Labels["n"])
				p.Labels["n"] = strconv.Itoa(n + 1)
				return p, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := &corev1.Pod{}
	if err := s.Get(ctx(t), key("ns", "a"), storage.GetOptions{}, got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["n"] != strconv.Itoa(workers) {
		t.Fatalf("after %d concurrent increments the counter is %s: an update was lost", workers, got.Labels["n"])
	}
}

func testPreconditions(t *testing.T, f Factory) {
	s := f.New(t)
	p := mustCreate(t, s, pod("ns", "a", nil))
	stale := "1"
	if p.ResourceVersion == stale {
		stale = "2"
	}
	noop := func(cur runtime.Object) (runtime.Object, error) { return cur, nil }
	err := s.GuaranteedUpdate(ctx(t), key("ns", "a"), &corev1.Pod{}, false, &storage.Preconditions{ResourceVersion: &stale}, noop)
	if !storage.IsConflict(err) {
		t.Fatalf("stale resourceVersion precondition: %v, want ErrConflict", err)
	}
	uid := types.UID("other")
	if err := s.Delete(ctx(t), key("ns", "a"), &corev1.Pod{}, &storage.Preconditions{UID: &uid}, nil); !storage.IsConflict(err) {
		t.Fatalf("uid precondition on delete: %v, want ErrConflict", err)
	}
	good := p.ResourceVersion
	if err := s.Delete(ctx(t), key("ns", "a"), &corev1.Pod{}, &storage.Preconditions{ResourceVersion: &good}, nil); err != nil {
		t.Fatalf("delete with matching precondition: %v", err)
	}
}

func testDelete(t *testing.T, f Factory) {
	s := f.New(t)
	mustCreate(t, s, pod("ns", "a", nil))
	veto := errors.New("veto")
	if err := s.Delete(ctx(t), key("ns", "a"), &corev1.Pod{}, nil, func(context.Context, runtime.Object) error { return veto }); !errors.Is(err, veto) {
		t.Fatalf("validate veto: %v", err)
	}
	out := &corev1.Pod{}
	if err := s.Delete(ctx(t), key("ns", "a"), out, nil, nil); err != nil {
		t.Fatal(err)
	}
	if out.Name != "a" {
		t.Fatalf("deleted object not returned: %+v", out.ObjectMeta)
	}
	if err := s.Delete(ctx(t), key("ns", "a"), &corev1.Pod{}, nil, nil); !storage.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
}

func testListPaging(t *testing.T, f Factory) {
	s := f.New(t)
	for i := 0; i < 25; i++ {
		mustCreate(t, s, pod("ns", fmt.Sprintf("p%02d", i), nil))
	}
	mustCreate(t, s, pod("other", "x", nil))
	seen := map[string]bool{}
	opts := storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 10}}
	var listRV string
	for page := 0; ; page++ {
		list := &corev1.PodList{}
		if err := s.GetList(ctx(t), "/pods/ns/", opts, list); err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if page == 0 {
			listRV = list.ResourceVersion
			if list.RemainingItemCount == nil || *list.RemainingItemCount != 15 {
				t.Errorf("first page remainingItemCount = %v, want 15", list.RemainingItemCount)
			}
			// A write between pages must not show up in later pages.
			mustCreate(t, s, pod("ns", "p99", nil))
		} else if list.ResourceVersion != listRV {
			t.Errorf("page %d resourceVersion %s, want the first page's %s", page, list.ResourceVersion, listRV)
		}
		for _, p := range list.Items {
			if seen[p.Name] {
				t.Errorf("%s listed twice", p.Name)
			}
			seen[p.Name] = true
		}
		if list.Continue == "" {
			break
		}
		if page > 5 {
			t.Fatal("paging does not end")
		}
		opts.Predicate.Continue = list.Continue
	}
	if len(seen) != 25 || seen["x"] || seen["p99"] {
		t.Fatalf("listed %d objects: %v", len(seen), seen)
	}
	if err := s.GetList(ctx(t), "/pods/ns/", storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Continue: "garbage!"}}, &corev1.PodList{}); err == nil {
		t.Error("a garbage continue token was accepted")
	}
	all := &corev1.PodList{}
	if err := s.GetList(ctx(t), "/pods/", storage.ListOptions{Recursive: true}, all); err != nil || len(all.Items) != 27 {
		t.Fatalf("list all: %d items, %v", len(all.Items), err)
	}
}

func testListPredicate(t *testing.T, f Factory) {
	s := f.New(t)
	for i := 0; i < 20; i++ {
		color := "red"
		if i%4 == 0 {
			color = "blue"
		}
		mustCreate(t, s, pod("ns", fmt.Sprintf("p%02d", i), map[string]string{"color": color}))
	}
	sel := labels.SelectorFromSet(labels.Set{"color": "blue"})
	list := &corev1.PodList{}
	opts := storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Label: sel, Limit: 2}}
	var names []string
	for {
		if err := s.GetList(ctx(t), "/pods/ns/", opts, list); err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Items {
			names = append(names, p.Name)
		}
		if list.Continue == "" {
			break
		}
		opts.Predicate.Continue = list.Continue
	}
	if fmt.Sprint(names) != "[p00 p04 p08 p12 p16]" {
		t.Fatalf("label-selected pages gave %v", names)
	}
	byName := &corev1.PodList{}
	fopts := storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Field: fields.OneTermEqualSelector("metadata.name", "p03")}}
	if err := s.GetList(ctx(t), "/pods/ns/", fopts, byName); err != nil || len(byName.Items) != 1 || byName.Items[0].Name != "p03" {
		t.Fatalf("field selector: %v %v", byName.Items, err)
	}
}

// next reads one event or fails after a timeout.
func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		if co, shared := ev.Object.(runtime.CacheableObject); shared {
			ev.Object = co.GetObject() // shared by watchers, encoded once
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return watch.Event{}
}

func expectEvent(t *testing.T, w watch.Interface, typ watch.EventType, name string) watch.Event {
	t.Helper()
	for {
		ev := next(t, w)
		if ev.Type == watch.Bookmark && typ != watch.Bookmark {
			continue
		}
		if ev.Type != typ {
			t.Fatalf("event %s %+v, want %s %s", ev.Type, ev.Object, typ, name)
		}
		if name != "" {
			if p, ok := ev.Object.(*corev1.Pod); !ok || p.Name != name {
				t.Fatalf("event %s for %+v, want %s", ev.Type, ev.Object, name)
			}
		}
		return ev
	}
}

func testWatchFromNow(t *testing.T, f Factory) {
	s := f.New(t)
	mustCreate(t, s, pod("ns", "old", nil))
	w, err := s.Watch(ctx(t), "/pods/", storage.ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expectEvent(t, w, watch.Added, "old") // synthetic: the current state
	mustCreate(t, s, pod("ns", "new", nil))
	ev := expectEvent(t, w, watch.Added, "new")
	if rv(t, ev.Object) == 0 {
		t.Fatal("event object has no resourceVersion")
	}
	if err := s.GuaranteedUpdate(ctx(t), key("ns", "new"), &corev1.Pod{}, false, nil, func(cur runtime.Object) (runtime.Object, error) {
		p := cur.(*corev1.Pod).DeepCopy()
		p.Labels = map[string]string{"v": "2"}
		return p, nil
	}); err != nil {
		t.Fatal(err)
	}
	ev = expectEvent(t, w, watch.Modified, "new")
	if ev.Object.(*corev1.Pod).Labels["v"] != "2" {
		t.Fatalf("modified event carries %+v", ev.Object)
	}
	deleted := &corev1.Pod{}
	if err := s.Delete(ctx(t), key("ns", "new"), deleted, nil, nil); err != nil {
		t.Fatal(err)
	}
	ev = expectEvent(t, w, watch.Deleted, "new")
	if ev.Object.(*corev1.Pod).Labels["v"] != "2" {
		t.Fatal("deleted event does not carry the last state")
	}
}

func testWatchFromRevision(t *testing.T, f Factory) {
	s := f.New(t)
	a := mustCreate(t, s, pod("ns", "a", nil))
	mustCreate(t, s, pod("ns", "b", nil))
	w, err := s.Watch(ctx(t), "/pods/", storage.ListOptions{Recursive: true, ResourceVersion: a.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expectEvent(t, w, watch.Added, "b") // only what came after a
}

func testWatchSingleKey(t *testing.T, f Factory) {
	s := f.New(t)
	a := mustCreate(t, s, pod("ns", "a", nil))
	w, err := s.Watch(ctx(t), key("ns", "a"), storage.ListOptions{ResourceVersion: a.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mustCreate(t, s, pod("ns", "ab", nil)) // shares the prefix: not this key
	if err := s.Delete(ctx(t), key("ns", "a"), &corev1.Pod{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, w, watch.Deleted, "a")
}

func testWatchSelectionTransitions(t *testing.T, f Factory) {
	s := f.New(t)
	start, err := s.CurrentRevision(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	sel := labels.SelectorFromSet(labels.Set{"pick": "yes"})
	w, err := s.Watch(ctx(t), "/pods/", storage.ListOptions{Recursive: true, ResourceVersion: strconv.FormatInt(start, 10),
		Predicate: storage.SelectionPredicate{Label: sel}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	mustCreate(t, s, pod("ns", "a", nil))
	relabel := func(v string) {
		t.Helper()
		if err := s.GuaranteedUpdate(ctx(t), key("ns", "a"), &corev1.Pod{}, false, nil, func(cur runtime.Object) (runtime.Object, error) {
			p := cur.(*corev1.Pod).DeepCopy()
			p.Labels = map[string]string{"pick": v}
			return p, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	relabel("yes")
	expectEvent(t, w, watch.Added, "a") // entered the selection
	relabel("no")
	expectEvent(t, w, watch.Deleted, "a") // left it
}

func testWatchInitialEvents(t *testing.T, f Factory) {
	s := f.New(t)
	mustCreate(t, s, pod("ns", "a", nil))
	mustCreate(t, s, pod("ns", "b", nil))
	yes := true
	w, err := s.Watch(ctx(t), "/pods/", storage.ListOptions{Recursive: true, SendInitialEvents: &yes, ProgressNotify: true,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expectEvent(t, w, watch.Added, "a")
	expectEvent(t, w, watch.Added, "b")
	ev := next(t, w)
	if ev.Type != watch.Bookmark {
		t.Fatalf("after the initial events: %s, want BOOKMARK", ev.Type)
	}
	m, _ := meta.Accessor(ev.Object)
	if m.GetAnnotations()[metav1.InitialEventsAnnotationKey] != "true" || m.GetResourceVersion() == "" {
		t.Fatalf("bookmark %+v lacks the initial-events-end annotation or a resourceVersion", m)
	}
}

func testExpired(t *testing.T, f Factory) {
	if f.Compact == nil {
		t.Skip("store cannot be compacted")
	}
	s := f.New(t)
	a := mustCreate(t, s, pod("ns", "a", nil))
	for i := 0; i < 3; i++ {
		mustCreate(t, s, pod("ns", fmt.Sprintf("b%d", i), nil))
	}
	cur, err := s.CurrentRevision(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	f.Compact(t, cur)
	w, err := s.Watch(ctx(t), "/pods/", storage.ListOptions{Recursive: true, ResourceVersion: a.ResourceVersion})
	switch {
	case storage.IsExpired(err):
	case err != nil:
		t.Fatalf("watch from a compacted revision: %v", err)
	default:
		defer w.Stop()
		ev := next(t, w)
		st, ok := ev.Object.(*metav1.Status)
		if ev.Type != watch.Error || !ok || st.Code != 410 {
			t.Fatalf("watch from a compacted revision: %s %+v, want a 410 error", ev.Type, ev.Object)
		}
	}
	err = s.GetList(ctx(t), "/pods/", storage.ListOptions{Recursive: true, ResourceVersion: a.ResourceVersion,
		ResourceVersionMatch: metav1.ResourceVersionMatchExact}, &corev1.PodList{})
	if !storage.IsExpired(err) {
		t.Fatalf("exact list at a compacted revision: %v, want ErrExpired", err)
	}
}
