package garbagecollector

import (
	"log/slog"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
)

var (
	rsKind  = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}
	podKind = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
)

func newTestGC() *Controller {
	return &Controller{
		log:    slog.Default(),
		kinds:  map[schema.GroupVersionKind]resourceInfo{rsKind: {namespaced: true}, podKind: {namespaced: true}},
		graph:  newGraph(),
		events: newEventQueue(),
		del:    workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[types.UID]()),
		orphan: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[types.UID]()),
	}
}

func obj(uid, name string, owners ...string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid)}}
	for _, o := range owners {
		t := true
		m.OwnerReferences = append(m.OwnerReferences, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs-" + o, UID: types.UID(o), BlockOwnerDeletion: &t})
	}
	return m
}

func drain(q workqueue.TypedRateLimitingInterface[types.UID]) []string {
	var out []string
	for q.Len() > 0 {
		u, _ := q.Get()
		q.Done(u)
		out = append(out, string(u))
	}
	sort.Strings(out)
	return out
}

func TestGraphBuilder(t *testing.T) {
	c := newTestGC()
	// A pod arrives before its owner: the owner is virtual and checked.
	c.apply(event{typ: addEvent, gvk: podKind, obj: obj("p1", "p1", "rs1")})
	if got := drain(c.del); len(got) != 1 || got[0] != "rs1" {
		t.Fatalf("virtual owner must be verified, queued %v", got)
	}
	if n := c.graph.get("rs1"); n == nil || !n.virtual {
		t.Fatal("owner should be a virtual node")
	}
	c.apply(event{typ: addEvent, gvk: rsKind, obj: obj("rs1", "rs-rs1")})
	if n := c.graph.get("rs1"); n.virtual || c.graph.dependentCount(n) != 1 {
		t.Fatal("the real owner replaces the virtual node and keeps its dependent")
	}
	c.apply(event{typ: addEvent, gvk: podKind, obj: obj("p2", "p2", "rs1")})
	drain(c.del)

	// Foreground deletion of the owner queues its dependents and itself.
	fg := obj("rs1", "rs-rs1")
	now := metav1.NewTime(time.Now())
	fg.DeletionTimestamp = &now
	fg.Finalizers = []string{metav1.FinalizerDeleteDependents}
	c.apply(event{typ: updateEvent, gvk: rsKind, obj: fg})
	if got := drain(c.del); len(got) != 3 {
		t.Fatalf("foreground deletion queues p1, p2 and rs1; got %v", got)
	}
	// A dependent leaving wakes the waiting owner.
	c.apply(event{typ: deleteEvent, gvk: podKind, obj: obj("p1", "p1", "rs1")})
	if got := drain(c.del); len(got) != 1 || got[0] != "rs1" {
		t.Fatalf("owner waiting on dependents must be rechecked, queued %v", got)
	}
	// The owner going away queues what is left of its dependents.
	c.apply(event{typ: deleteEvent, gvk: rsKind, obj: fg})
	if got := drain(c.del); len(got) != 1 || got[0] != "p2" {
		t.Fatalf("dependents of a deleted owner are checked, queued %v", got)
	}

	// Orphan finalizer queues the owner for orphaning.
	c.apply(event{typ: addEvent, gvk: rsKind, obj: obj("rs2", "rs-rs2")})
	or := obj("rs2", "rs-rs2")
	or.DeletionTimestamp = &now
	or.Finalizers = []string{metav1.FinalizerOrphanDependents}
	c.apply(event{typ: updateEvent, gvk: rsKind, obj: or})
	if got := drain(c.orphan); len(got) != 1 || got[0] != "rs2" {
		t.Fatalf("orphan finalizer queues the owner, got %v", got)
	}
}

func TestDiffOwners(t *testing.T) {
	a := metav1.OwnerReference{UID: "a"}
	b := metav1.OwnerReference{UID: "b"}
	c := metav1.OwnerReference{UID: "c"}
	added, removed := diffOwners([]metav1.OwnerReference{a, b}, []metav1.OwnerReference{b, c})
	if len(added) != 1 || added[0].UID != "c" || len(removed) != 1 || removed[0].UID != "a" {
		t.Fatalf("added %v removed %v", added, removed)
	}
}
