package fieldmanager

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/applyconfigurations"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// TestUpdateCache: updates of the same shape reuse the managedFields,
// with this write's time where upstream sets it and the live entries'
// times elsewhere, in upstream's order; every result equals upstream's
// computation, and writes the cache cannot reproduce are not cached.
func TestUpdateCache(t *testing.T) {
	gvk := corev1.SchemeGroupVersion.WithKind("Pod")
	managers := map[string][2]*Manager{}
	for _, sub := range []string{"", "status"} {
		upstream, err := newWith(applyconfigurations.NewTypeConverter(scheme.Scheme), scheme.Scheme, gvk, sub)
		if err != nil {
			t.Fatal(err)
		}
		upstream.creates, upstream.updates = nil, nil
		fm, err := New(gvk, sub)
		if err != nil {
			t.Fatal(err)
		}
		fm.creates, fm.updates = nil, &updateCache{}
		managers[sub] = [2]*Manager{fm, upstream}
	}
	t1 := metav1.NewTime(time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC))
	t2 := metav1.NewTime(t1.Add(time.Minute))
	// live returns a pod created by "bench" at t1, with a label "tier"
	// added by "labeler" at t2 when labeled.
	live := func(name string, labeled bool, createdAt, labeledAt metav1.Time) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
				CreationTimestamp: createdAt, ResourceVersion: "5", Labels: map[string]string{"app": "x"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}},
		}
		up := managers[""][1]
		out, _ := up.Update(&corev1.Pod{}, p, "bench")
		p = out.(*corev1.Pod)
		p.ManagedFields[0].Time = &createdAt
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort}
		if labeled {
			next := p.DeepCopy()
			next.Labels["tier"] = "web"
			out, _ := up.Update(p, next, "labeler")
			p = out.(*corev1.Pod)
			for i := range p.ManagedFields {
				if p.ManagedFields[i].Manager == "labeler" {
					p.ManagedFields[i].Time = &labeledAt
				}
			}
			sortEntries(p.ManagedFields)
		}
		return p
	}
	unschedulable := func(p *corev1.Pod, msg string) *corev1.Pod {
		n := p.DeepCopy()
		n.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: "Unschedulable", Message: msg, LastTransitionTime: metav1.Now()}}
		return n
	}
	relabel := func(p *corev1.Pod, v string) *corev1.Pod {
		n := p.DeepCopy()
		n.Labels["app"] = v
		return n
	}
	steps := []struct {
		name      string
		sub       string
		live      *corev1.Pod
		obj       func(*corev1.Pod) *corev1.Pod
		manager   string
		cacheable bool
		hit       bool
	}{
		{"first status write", "status", live("a", false, t1, t2), func(p *corev1.Pod) *corev1.Pod { return unschedulable(p, "0/0 nodes") }, "sched", true, false},
		{"other name, uid and times", "status", live("b", false, t2, t1), func(p *corev1.Pod) *corev1.Pod { return unschedulable(p, "0/0 nodes") }, "sched", true, true},
		{"another message", "status", live("c", false, t1, t2), func(p *corev1.Pod) *corev1.Pod { return unschedulable(p, "0/1 nodes") }, "sched", true, false},
		{"another manager", "status", live("d", false, t1, t2), func(p *corev1.Pod) *corev1.Pod { return unschedulable(p, "0/0 nodes") }, "kubelet", true, false},
		{"labeled later", "", live("e", true, t1, t2), func(p *corev1.Pod) *corev1.Pod { return relabel(p, "y") }, "bench", true, false},
		{"labeled earlier: other order", "", live("f", true, t2, t1), func(p *corev1.Pod) *corev1.Pod { return relabel(p, "y") }, "bench", true, true},
		{"no change keeps the times", "", live("g", true, t1, t2), func(p *corev1.Pod) *corev1.Pod { return p.DeepCopy() }, "labeler", true, false},
		{"no change, other times", "", live("h", true, t2, t1), func(p *corev1.Pod) *corev1.Pod { return p.DeepCopy() }, "labeler", true, true},
		{"managedFields of its own", "", live("i", true, t1, t2), func(p *corev1.Pod) *corev1.Pod {
			n := relabel(p, "y")
			n.ManagedFields = n.ManagedFields[:1]
			return n
		}, "bench", false, false},
		{"managedFields reset", "", live("j", true, t1, t2), func(p *corev1.Pod) *corev1.Pod {
			n := relabel(p, "y")
			n.ManagedFields = []metav1.ManagedFieldsEntry{}
			return n
		}, "bench", false, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			fm, upstream := managers[s.sub][0], managers[s.sub][1]
			obj := s.obj(s.live)
			key, cacheable := fm.updates.key(gvk, s.sub, s.live, obj, "m-"+s.manager)
			if cacheable != s.cacheable {
				t.Fatalf("cacheable %v, want %v", cacheable, s.cacheable)
			}
			key, _ = fm.updates.key(gvk, s.sub, s.live, obj, s.manager)
			hit := cacheable && fm.updates.apply(key, s.live, obj.DeepCopy(), time.Now())
			if hit != s.hit {
				t.Fatalf("cache hit %v, want %v", hit, s.hit)
			}
			t0 := time.Now().Add(-time.Second)
			got, _ := fm.Update(s.live.DeepCopy(), obj.DeepCopy(), s.manager)
			want, _ := upstream.Update(s.live.DeepCopy(), obj.DeepCopy(), s.manager)
			if g, w := timedEntries(t, got.(metav1.Object), s.live, t0), timedEntries(t, want.(metav1.Object), s.live, t0); g != w {
				t.Fatalf("managedFields\n got %s\nwant %s", g, w)
			}
		})
	}
}

// timedEntries is obj's managedFields as JSON with each time replaced by
// "live" when it is a live entry's and "now" when it is at or after t0.
func timedEntries(t *testing.T, obj, live metav1.Object, t0 time.Time) string {
	t.Helper()
	var parts []string
	for _, e := range obj.GetManagedFields() {
		when := "none"
		if e.Time != nil {
			when = "old"
			for _, l := range live.GetManagedFields() {
				if l.Manager == e.Manager && l.Time != nil && l.Time.Equal(e.Time) {
					when = "live " + l.Time.UTC().Format(time.RFC3339)
				}
			}
			if !e.Time.Time.Before(t0) {
				when = "now"
			}
		}
		e.Time = nil
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, when+" "+string(data))
	}
	return strings.Join(parts, "\n")
}
