package cacher

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/etcd"
	"github.com/skiff-sh/skiff/internal/storage/storagetest"
)

var shared *etcd.Embedded

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-cacher-test")
	if err != nil {
		panic(err)
	}
	shared, err = etcd.StartEmbedded(context.Background(), etcd.EmbeddedConfig{DataDir: dir})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	shared.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

var prefixes atomic.Int64

func newCachedPodStore(t *testing.T) storage.Interface {
	t.Helper()
	under, err := etcd.New(etcd.Config{
		Client:      shared.Client(),
		Codec:       etcd.DefaultCodec(corev1.SchemeGroupVersion),
		NewFunc:     func() runtime.Object { return &corev1.Pod{} },
		NewListFunc: func() runtime.Object { return &corev1.PodList{} },
		Prefix:      fmt.Sprintf("/cacher-test-%d", prefixes.Add(1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), Config{
		Storage:     under,
		Prefix:      "/pods",
		NewFunc:     func() runtime.Object { return &corev1.Pod{} },
		NewListFunc: func() runtime.Object { return &corev1.PodList{} },
		EventWindow: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("cache not ready")
	}
	return c
}

// The cache serves watches from its own event window, not etcd's history,
// so etcd compaction does not apply; TestWatchOlderThanWindowIs410 checks
// the cache's own expiry.
func TestConformance(t *testing.T) {
	storagetest.RunTests(t, storagetest.Factory{New: newCachedPodStore})
}

func TestWatchOlderThanWindowIs410(t *testing.T) {
	s := newCachedPodStore(t) // window: 100 events
	ctx := context.Background()
	var first string
	for i := 0; i < 150; i++ {
		out := &corev1.Pod{}
		p := &corev1.Pod{}
		p.Name, p.Namespace = fmt.Sprintf("p%d", i), "ns"
		if err := s.Create(ctx, "/pods/ns/"+p.Name, p, out); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = out.ResourceVersion
		}
	}
	cur, _ := s.CurrentRevision(ctx)
	// Let the cache catch up before asking for old history.
	if err := s.GetList(ctx, "/pods/", storage.ListOptions{Recursive: true}, &corev1.PodList{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Watch(ctx, "/pods/", storage.ListOptions{Recursive: true, ResourceVersion: first}); !storage.IsExpired(err) {
		t.Fatalf("watch from %s (current %d) beyond the window: %v, want ErrExpired", first, cur, err)
	}
	w, err := s.Watch(ctx, "/pods/", storage.ListOptions{Recursive: true, ResourceVersion: fmt.Sprint(cur - 10)})
	if err != nil {
		t.Fatalf("watch from inside the window: %v", err)
	}
	w.Stop()
}

func TestListServedFromMemory(t *testing.T) {
	s := newCachedPodStore(t).(*Cacher)
	ctx := context.Background()
	p := &corev1.Pod{}
	p.Name, p.Namespace = "a", "ns"
	if err := s.Create(ctx, "/pods/ns/a", p, &corev1.Pod{}); err != nil {
		t.Fatal(err)
	}
	list := &corev1.PodList{}
	if err := s.GetList(ctx, "/pods/", storage.ListOptions{Recursive: true}, list); err != nil || len(list.Items) != 1 {
		t.Fatalf("consistent list: %v %v", list.Items, err)
	}
	// List items are copies of the top-level struct: replacing a field does
	// not change the cache.
	list.Items[0].Labels = map[string]string{"mutated": "yes"}
	again := &corev1.PodList{}
	if err := s.GetList(ctx, "/pods/", storage.ListOptions{Recursive: true, ResourceVersion: "0"}, again); err != nil {
		t.Fatal(err)
	}
	if again.Items[0].Labels["mutated"] != "" {
		t.Fatal("a caller's change leaked into the cache")
	}
}

// TestPeek: Peek lends the cached object once it is in the cache and
// reports false, without calling f, for a key the cache does not hold.
func TestPeek(t *testing.T) {
	s := newCachedPodStore(t).(*Cacher)
	ctx := context.Background()
	p := &corev1.Pod{}
	p.Name, p.Namespace, p.Labels = "a", "ns", map[string]string{"app": "x"}
	out := &corev1.Pod{}
	if err := s.Create(ctx, "/pods/ns/a", p, out); err != nil {
		t.Fatal(err)
	}
	// Wait for the cache to hold the write.
	if err := s.Get(ctx, "/pods/ns/a", storage.GetOptions{ResourceVersion: out.ResourceVersion}, &corev1.Pod{}); err != nil {
		t.Fatal(err)
	}
	var app string
	if !s.Peek("/pods/ns/a", func(obj runtime.Object) { app = obj.(*corev1.Pod).Labels["app"] }) || app != "x" {
		t.Fatalf("peek of a cached pod: label %q", app)
	}
	if s.Peek("/pods/ns/missing", func(runtime.Object) { t.Fatal("f called for a missing key") }) {
		t.Fatal("peek found a missing key")
	}
}

// TestListCached: the page holds the cache's current objects (shared, with
// their encodings), the list's revision and a continue token past a limit;
// a continue token goes to the store.
func TestListCached(t *testing.T) {
	s := newCachedPodStore(t)
	c := s.(*Cacher)
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		p := &corev1.Pod{}
		p.Name, p.Namespace = n, "ns"
		if err := s.Create(ctx, "/pods/ns/"+n, p, &corev1.Pod{}); err != nil {
			t.Fatal(err)
		}
	}
	page, ok, err := c.ListCached(ctx, "/pods/ns/", storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 2}})
	if err != nil || !ok {
		t.Fatalf("ListCached: %v %v", ok, err)
	}
	if len(page.Items) != 2 || page.Continue == "" || page.RemainingItemCount == nil || *page.RemainingItemCount != 1 || page.ResourceVersion == "" {
		t.Fatalf("page %+v", page)
	}
	for i, it := range page.Items {
		co, ok := it.(runtime.CacheableObject)
		if !ok {
			t.Fatalf("item %d is a %T", i, it)
		}
		if name := co.GetObject().(*corev1.Pod).Name; name != []string{"a", "b"}[i] {
			t.Errorf("item %d is %s", i, name)
		}
	}
	again, _, _ := c.ListCached(ctx, "/pods/ns/", storage.ListOptions{Recursive: true, ResourceVersion: "0"})
	if len(again.Items) != 3 || again.Items[0] != page.Items[0] {
		t.Errorf("a second list does not share the cached objects")
	}
	if _, ok, err := c.ListCached(ctx, "/pods/ns/", storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Continue: page.Continue}}); ok || err != nil {
		t.Errorf("a continue token was served from the cache: %v %v", ok, err)
	}
}
