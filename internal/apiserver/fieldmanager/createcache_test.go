package fieldmanager

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/applyconfigurations"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// TestCreateCache: creates of the same shape reuse the managedFields with
// a fresh time; anything that changes the owned fields, the manager, a
// live object or managedFields sent by the client computes them anew, and
// every result equals upstream's computation.
func TestCreateCache(t *testing.T) {
	gvk := corev1.SchemeGroupVersion.WithKind("Pod")
	upstream, err := newWith(applyconfigurations.NewTypeConverter(scheme.Scheme), scheme.Scheme, gvk, "")
	if err != nil {
		t.Fatal(err)
	}
	upstream.creates, upstream.updates = nil, nil
	fm, err := New(gvk, "")
	if err != nil {
		t.Fatal(err)
	}
	fm.creates = &createCache{} // not shared with other tests
	pod := func(name string, labels map[string]string, env ...corev1.EnvVar) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: labels, UID: types.UID("uid-" + name),
				CreationTimestamp: metav1.Now()},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img", Env: env}}},
		}
	}
	steps := []struct {
		name    string
		live    runtime.Object
		obj     *corev1.Pod
		manager string
		hit     bool
	}{
		{"first", &corev1.Pod{}, pod("a", map[string]string{"app": "x"}), "m", false},
		{"other name, uid and time", &corev1.Pod{}, pod("b", map[string]string{"app": "x"}), "m", true},
		{"another label value", &corev1.Pod{}, pod("b2", map[string]string{"app": "y"}), "m", false},
		{"another manager", &corev1.Pod{}, pod("c", map[string]string{"app": "x"}), "other", false},
		{"another label key", &corev1.Pod{}, pod("d", map[string]string{"tier": "x"}), "m", false},
		{"an env list", &corev1.Pod{}, pod("e", map[string]string{"app": "x"}, corev1.EnvVar{Name: "A", Value: "1"}), "m", false},
		{"an update", pod("f", map[string]string{"app": "x"}), pod("f", map[string]string{"app": "x", "b": "c"}), "m", false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := len(fm.creates.entries)
			_, cacheable := fm.creates.key(gvk, "", s.live, s.obj, s.manager)
			hit := cacheable && fm.creates.apply(mustKey(t, fm, gvk, s.live, s.obj, s.manager), s.obj.DeepCopy(), time.Now())
			if hit != s.hit {
				t.Fatalf("cache hit %v, want %v (entries %d)", hit, s.hit, before)
			}
			t0 := time.Now().Add(-time.Second)
			got, _ := fm.Update(s.live.DeepCopyObject(), s.obj.DeepCopy(), s.manager)
			want, _ := upstream.Update(s.live.DeepCopyObject(), s.obj.DeepCopy(), s.manager)
			if g, w := entries(t, got.DeepCopyObject()), entries(t, want); g != w {
				t.Fatalf("managedFields\n got %s\nwant %s", g, w)
			}
			p := got.(*corev1.Pod)
			if p.Name != s.obj.Name || p.UID != s.obj.UID || !p.CreationTimestamp.Equal(&s.obj.CreationTimestamp) {
				t.Fatalf("the object changed: %s %s %v", p.Name, p.UID, p.CreationTimestamp)
			}
			for _, e := range p.ManagedFields {
				if e.Time == nil || e.Time.Before(&metav1.Time{Time: t0}) {
					t.Fatalf("entry time %v, want now", e.Time)
				}
			}
		})
	}
	// Managed fields sent with a create are not a plain create.
	sent := pod("g", nil)
	sent.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "x", Operation: metav1.ManagedFieldsOperationUpdate}}
	if _, ok := fm.creates.key(gvk, "", &corev1.Pod{}, sent, "m"); ok {
		t.Fatal("a create with managedFields is cacheable")
	}
}

func mustKey(t *testing.T, fm *Manager, gvk schema.GroupVersionKind, live, obj runtime.Object, manager string) cacheKey {
	t.Helper()
	k, _ := fm.creates.key(gvk, "", live, obj, manager)
	return k
}

// TestCreateCacheBounded: the cache starts over rather than grow past its
// budget.
func TestCreateCacheBounded(t *testing.T) {
	c := &createCache{}
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{{
		Manager: "m", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: make([]byte, 1000)}}}}}
	for i := 0; i < 10000; i++ {
		var key cacheKey
		key.sum[0], key.sum[1] = byte(i), byte(i>>8)
		c.record(key, obj)
		if c.bytes > maxCreateCacheBytes {
			t.Fatalf("after %d records: %d bytes", i+1, c.bytes)
		}
	}
	if len(c.entries) == 0 {
		t.Fatal("empty cache")
	}
}

// TestCreateCacheEvents: events that differ only in the values of their
// fields (another object, node, message or time) share an entry; one
// that sets another field does not; every result equals upstream's.
func TestCreateCacheEvents(t *testing.T) {
	gvk := corev1.SchemeGroupVersion.WithKind("Event")
	upstream, err := newWith(applyconfigurations.NewTypeConverter(scheme.Scheme), scheme.Scheme, gvk, "")
	if err != nil {
		t.Fatal(err)
	}
	upstream.creates, upstream.updates = nil, nil
	fm, err := New(gvk, "")
	if err != nil {
		t.Fatal(err)
	}
	fm.creates = &createCache{}
	event := func(pod, host, msg string, at time.Time, count int32) *corev1.Event {
		return &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: pod + ".abc", Namespace: "ns"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: pod, UID: types.UID("uid-" + pod),
				APIVersion: "v1", ResourceVersion: "12"},
			Reason: "FailedScheduling", Message: msg, Source: corev1.EventSource{Component: "scheduler", Host: host},
			FirstTimestamp: metav1.NewTime(at), LastTimestamp: metav1.NewTime(at), Count: count, Type: corev1.EventTypeWarning,
		}
	}
	now := time.Now()
	withPath := event("e", "n1", "m", now, 1)
	withPath.InvolvedObject.FieldPath = "spec.containers{c}"
	steps := []struct {
		name string
		obj  *corev1.Event
		hit  bool
	}{
		{"first", event("a", "n1", "0/3 nodes", now, 1), false},
		{"other pod, node, message, time and count", event("b", "n2", "0/4 nodes are available", now.Add(time.Hour), 7), true},
		{"no host", event("c", "", "m", now, 1), false},
		{"no host again", event("d", "", "x", now, 1), true},
		{"a field path", withPath, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			key, cacheable := fm.creates.key(gvk, "", &corev1.Event{}, s.obj, "sched")
			hit := cacheable && fm.creates.apply(key, s.obj.DeepCopy(), time.Now())
			if hit != s.hit {
				t.Fatalf("cache hit %v, want %v", hit, s.hit)
			}
			got, _ := fm.Update(&corev1.Event{}, s.obj.DeepCopy(), "sched")
			want, _ := upstream.Update(&corev1.Event{}, s.obj.DeepCopy(), "sched")
			if g, w := entries(t, got.DeepCopyObject()), entries(t, want); g != w {
				t.Fatalf("managedFields\n got %s\nwant %s", g, w)
			}
			if e := got.(*corev1.Event); e.InvolvedObject != s.obj.InvolvedObject || e.Message != s.obj.Message {
				t.Fatalf("the event changed: %+v", e)
			}
		})
	}
}

// TestCreateAllocatesLiveOnMiss: Create asks for the empty live object
// only when the cache misses, and gives upstream's entries either way.
func TestCreateAllocatesLiveOnMiss(t *testing.T) {
	gvk := corev1.SchemeGroupVersion.WithKind("ConfigMap")
	upstream, err := newWith(applyconfigurations.NewTypeConverter(scheme.Scheme), scheme.Scheme, gvk, "")
	if err != nil {
		t.Fatal(err)
	}
	upstream.creates, upstream.updates = nil, nil
	fm, err := New(gvk, "")
	if err != nil {
		t.Fatal(err)
	}
	fm.creates = &createCache{}
	for i, wantNew := range []bool{true, false} {
		obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("cm", i), Namespace: "ns"}, Data: map[string]string{"k": "v"}}
		called := false
		got, err := fm.Create(func() runtime.Object { called = true; return &corev1.ConfigMap{} }, obj.DeepCopy(), "m")
		if err != nil {
			t.Fatal(err)
		}
		if called != wantNew {
			t.Fatalf("create %d: live allocated %v, want %v", i, called, wantNew)
		}
		want, _ := upstream.Update(&corev1.ConfigMap{}, obj.DeepCopy(), "m")
		if g, w := entries(t, got), entries(t, want); g != w {
			t.Fatalf("create %d: managedFields\n got %s\nwant %s", i, g, w)
		}
	}
}
