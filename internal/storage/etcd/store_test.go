package etcd

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/storagetest"
)

var shared *Embedded

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-etcd-test")
	if err != nil {
		panic(err)
	}
	shared, err = StartEmbedded(context.Background(), EmbeddedConfig{DataDir: dir})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	shared.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

var prefixes atomic.Int64

func newPodStore(t *testing.T) storage.Interface {
	t.Helper()
	s, err := New(Config{
		Client:      shared.Client(),
		Codec:       DefaultCodec(corev1.SchemeGroupVersion),
		NewFunc:     func() runtime.Object { return &corev1.Pod{} },
		NewListFunc: func() runtime.Object { return &corev1.PodList{} },
		Prefix:      fmt.Sprintf("/test-%d", prefixes.Add(1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.RunTests(t, storagetest.Factory{
		New: newPodStore,
		Compact: func(t *testing.T, rev int64) {
			if err := Compact(context.Background(), shared.Client(), rev); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e, err := StartEmbedded(ctx, EmbeddedConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	other, err := StartEmbedded(ctx, EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("a second instance beside the first: %v", err)
	}
	defer other.Close()
	if _, err := e.Client().Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	if resp, err := other.Client().Get(ctx, "/k"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("instances share data: %v %v", resp, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = StartEmbedded(ctx, EmbeddedConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	resp, err := e.Client().Get(ctx, "/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
}

// The lone member runs with the short raft timers (its start waits 1–5
// ticks for its own election), not etcd's 100 ms / 1 s.
func TestEmbeddedRaftTimers(t *testing.T) {
	cfg := shared.etcd.Server.Cfg
	if cfg.TickMs != singleMemberTickMs || cfg.ElectionTicks != singleMemberElectionMs/singleMemberTickMs {
		t.Fatalf("raft timers: tick %d ms, election %d ticks; want %d ms, %d ticks",
			cfg.TickMs, cfg.ElectionTicks, singleMemberTickMs, singleMemberElectionMs/singleMemberTickMs)
	}
	if shared.etcd.Server.Leader() != shared.etcd.Server.MemberID() {
		t.Fatalf("leader %v, want the member itself (%v)", shared.etcd.Server.Leader(), shared.etcd.Server.MemberID())
	}
}

func TestStoredAsProtobufWithoutResourceVersion(t *testing.T) {
	s := newPodStore(t).(*store)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	if err := s.Create(context.Background(), "/pods/ns/p", p, &corev1.Pod{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := shared.Client().Get(ctx, s.prefix+"/pods/ns/p")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(err)
	}
	raw := resp.Kvs[0].Value
	if len(raw) < 4 || string(raw[:4]) != "k8s\x00" {
		t.Fatalf("stored bytes do not start with the protobuf magic: %q", raw[:min(len(raw), 8)])
	}
}

// TestGuaranteedUpdateFromSuggestion: an update that starts from a
// suggested object writes from it when it is current (tryUpdate runs
// once), and from etcd's object when it is stale, whether the stale copy
// fails the compare-and-swap, fails a precondition or tryUpdate, or makes
// the write look like a no-op.
func TestGuaranteedUpdateFromSuggestion(t *testing.T) {
	s := newPodStore(t).(*store)
	ctx := context.Background()
	setLabel := func(k, v string) storage.UpdateFunc {
		return func(cur runtime.Object) (runtime.Object, error) {
			p := cur.(*corev1.Pod).DeepCopy()
			if p.Labels == nil {
				p.Labels = map[string]string{}
			}
			p.Labels[k] = v
			return p, nil
		}
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}}
	v1 := &corev1.Pod{}
	if err := s.Create(ctx, "/pods/ns/p", p, v1); err != nil {
		t.Fatal(err)
	}
	// Current suggestion: one tryUpdate.
	calls := 0
	v2 := &corev1.Pod{}
	err := s.GuaranteedUpdateFrom(ctx, "/pods/ns/p", v2, false, nil, func(cur runtime.Object) (runtime.Object, error) {
		calls++
		return setLabel("a", "1")(cur)
	}, v1.DeepCopy())
	if err != nil || calls != 1 || v2.Labels["a"] != "1" {
		t.Fatalf("current suggestion: %v, %d calls, labels %v", err, calls, v2.Labels)
	}
	// Stale suggestion (v1): the write lands on v2, keeping its label.
	v3 := &corev1.Pod{}
	if err := s.GuaranteedUpdateFrom(ctx, "/pods/ns/p", v3, false, nil, setLabel("b", "2"), v1.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if v3.Labels["a"] != "1" || v3.Labels["b"] != "2" {
		t.Fatalf("stale suggestion lost a write: %v", v3.Labels)
	}
	// Stale suggestion that looks like a no-op: "a"="1" is new to v1 but
	// not to etcd; out is etcd's object and nothing is written.
	v4 := &corev1.Pod{}
	stale := v1.DeepCopy()
	stale.Labels = map[string]string{"a": "1", "b": "2"}
	if err := s.GuaranteedUpdateFrom(ctx, "/pods/ns/p", v4, false, nil, setLabel("a", "1"), stale); err != nil {
		t.Fatal(err)
	}
	if v4.ResourceVersion != v3.ResourceVersion {
		t.Fatalf("no-op on a stale suggestion wrote: rv %s, want %s", v4.ResourceVersion, v3.ResourceVersion)
	}
	// A tryUpdate error on stale data is retried on etcd's object.
	v5 := &corev1.Pod{}
	err = s.GuaranteedUpdateFrom(ctx, "/pods/ns/p", v5, false, nil, func(cur runtime.Object) (runtime.Object, error) {
		if cur.(*corev1.Pod).Labels["b"] != "2" {
			return nil, fmt.Errorf("stale")
		}
		return setLabel("c", "3")(cur)
	}, v1.DeepCopy())
	if err != nil || v5.Labels["c"] != "3" {
		t.Fatalf("tryUpdate error on a stale suggestion: %v %v", err, v5.Labels)
	}
	// A precondition that fails on etcd's object is an error; one that
	// fails only on the stale suggestion is not.
	uid := types.UID("u1")
	staleUID := v1.DeepCopy()
	staleUID.UID = "old"
	if err := s.GuaranteedUpdateFrom(ctx, "/pods/ns/p", &corev1.Pod{}, false, &storage.Preconditions{UID: &uid}, setLabel("d", "4"), staleUID); err != nil {
		t.Fatalf("precondition on a stale suggestion: %v", err)
	}
	other := types.UID("other")
	if err := s.GuaranteedUpdateFrom(ctx, "/pods/ns/p", &corev1.Pod{}, false, &storage.Preconditions{UID: &other}, setLabel("e", "5"), v1.DeepCopy()); !storage.IsConflict(err) {
		t.Fatalf("failing precondition: %v, want a conflict", err)
	}
}
