package scheduler

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	st "github.com/skiff-sh/skiff/internal/scheduler/schedtest"
)

// tokens is a rate limiter the test hands tokens to.
type tokens struct{ c chan struct{} }

func (l tokens) TryAccept() bool {
	select {
	case <-l.c:
		return true
	default:
		return false
	}
}
func (l tokens) Accept()      { <-l.c }
func (l tokens) Stop()        {}
func (l tokens) QPS() float32 { return 0 }
func (l tokens) give(n int) {
	go func() {
		for range n {
			l.c <- struct{}{}
		}
	}()
}
func (l tokens) Wait(ctx context.Context) error {
	select {
	case <-l.c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recorded collects what a failureWriter writes.
type recorded struct {
	mu  sync.Mutex
	got []string
	c   chan struct{}
}

func (r *recorded) write(_ context.Context, f failure) {
	r.mu.Lock()
	r.got = append(r.got, f.pod.Name+":"+f.msg)
	r.mu.Unlock()
	r.c <- struct{}{}
}

func (r *recorded) wait(t *testing.T, n int) []string {
	t.Helper()
	for range n {
		select {
		case <-r.c:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %v written", r.got)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func TestFailureWriterCoalescesAndPaces(t *testing.T) {
	rec := &recorded{c: make(chan struct{}, 10)}
	lim := tokens{c: make(chan struct{})}
	w := newFailureWriter(1, 1, rec.write)
	w.limiter = lim
	pod := func(name string) *corev1.Pod { return st.MakePod().Name(name).Obj() }

	// Pending before the writer runs: a's newer message replaces its
	// older one but keeps a's place; c is forgotten (deleted).
	w.Add(pod("a"), "old")
	w.Add(pod("b"), "b1")
	w.Add(pod("c"), "c1")
	w.Add(pod("a"), "new")
	w.Forget("default/c")
	if n := w.Len(); n != 2 {
		t.Fatalf("%d pending, want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// One write per token.
	lim.give(1)
	if got := rec.wait(t, 1); strings.Join(got, ",") != "a:new" {
		t.Fatalf("written %v, want a:new first", got)
	}
	select {
	case <-rec.c:
		t.Fatalf("written without a token: %v", rec.got)
	case <-time.After(100 * time.Millisecond):
	}
	lim.give(1)
	if got := rec.wait(t, 1); strings.Join(got, ",") != "a:new,b:b1" {
		t.Fatalf("written %v", got)
	}
	// A record added while the writer idles is written with the next token.
	w.Add(pod("d"), "d1")
	lim.give(1)
	if got := rec.wait(t, 1); strings.Join(got, ",") != "a:new,b:b1,d:d1" {
		t.Fatalf("written %v", got)
	}
	if n := w.Len(); n != 0 {
		t.Errorf("%d pending after the writes", n)
	}
}

// failureScheduler is a scheduler with a fake client, a pod lister holding
// pods and a fake event recorder.
func failureScheduler(t *testing.T, pods ...*corev1.Pod) (*Scheduler, *fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	cs := fake.NewSimpleClientset()
	cs.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, &corev1.Pod{}, nil })
	s, err := New(Config{Client: cs})
	if err != nil {
		t.Fatal(err)
	}
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range pods {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	s.pods = listerscorev1.NewPodLister(idx)
	rec := record.NewFakeRecorder(10)
	s.recorder = rec
	return s, cs, rec
}

// statusPatches returns the status patches the client sent, by pod.
func statusPatches(cs *fake.Clientset) map[string]string {
	out := map[string]string{}
	for _, a := range cs.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetSubresource() == "status" {
			out[p.GetName()] = string(p.GetPatch())
		}
	}
	return out
}

func TestWriteFailureChecksThePodFirst(t *testing.T) {
	pending := func(name, uid string) *corev1.Pod {
		p := st.MakePod().Name(name).UID(uid).Obj()
		p.Spec.SchedulerName = corev1.DefaultSchedulerName
		return p
	}
	bound := pending("bound", "u-bound")
	bound.Spec.NodeName = "n1"
	marked := pending("marked", "u-marked")
	marked.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "no room"}}
	s, cs, rec := failureScheduler(t, pending("waiting", "u-waiting"), bound, marked, pending("recreated", "u-new"))

	for _, tc := range []struct {
		pod   *corev1.Pod
		write bool
	}{
		{pending("waiting", "u-waiting"), true},
		{pending("bound", "u-bound"), false},     // bound meanwhile
		{pending("marked", "u-marked"), false},   // already carries the message
		{pending("recreated", "u-old"), false},   // another pod of that name now
		{pending("deleted", "u-deleted"), false}, // gone
	} {
		s.writeFailure(context.Background(), failure{pod: tc.pod, msg: "no room"})
		_, wrote := statusPatches(cs)[tc.pod.Name]
		if wrote != tc.write {
			t.Errorf("%s: status written %v, want %v", tc.pod.Name, wrote, tc.write)
		}
	}
	patch := statusPatches(cs)["waiting"]
	var got struct {
		Status corev1.PodStatus `json:"status"`
	}
	if err := json.Unmarshal([]byte(patch), &got); err != nil || len(got.Status.Conditions) != 1 ||
		got.Status.Conditions[0].Type != corev1.PodScheduled || got.Status.Conditions[0].Status != corev1.ConditionFalse ||
		got.Status.Conditions[0].Reason != corev1.PodReasonUnschedulable || got.Status.Conditions[0].Message != "no room" {
		t.Errorf("status patch %s (%v)", patch, err)
	}
	if len(rec.Events) != 1 {
		t.Fatalf("%d events, want 1", len(rec.Events))
	}
	if ev := <-rec.Events; ev != "Warning FailedScheduling no room" {
		t.Errorf("event %q", ev)
	}
}

func TestMarkUnschedulable(t *testing.T) {
	p := st.MakePod().Name("p").UID("u").Obj()
	p.Spec.SchedulerName = corev1.DefaultSchedulerName
	s, cs, _ := failureScheduler(t, p)
	ctx := context.Background()

	// Without a nomination: queued for the writer, nothing written yet.
	s.markUnschedulable(ctx, p, "no room", "")
	if n := s.failures.Len(); n != 1 || len(statusPatches(cs)) != 0 {
		t.Fatalf("pending %d, patches %v: want 1 pending, none written", n, statusPatches(cs))
	}
	// A nomination is written at once (before victims are deleted) and
	// replaces the pending record.
	s.markUnschedulable(ctx, p, "preempting", "n1")
	if n := s.failures.Len(); n != 0 {
		t.Errorf("%d pending after a nomination", n)
	}
	if patch := statusPatches(cs)["p"]; !strings.Contains(patch, `"nominatedNodeName":"n1"`) || !strings.Contains(patch, "preempting") {
		t.Errorf("nomination patch %q", patch)
	}
	// A pod that already carries the message needs nothing, and its
	// pending record goes.
	s.markUnschedulable(ctx, p, "other", "")
	marked := p.DeepCopy()
	marked.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "other"}}
	s.markUnschedulable(ctx, marked, "other", "")
	if n := s.failures.Len(); n != 0 {
		t.Errorf("%d pending for a pod that carries its message", n)
	}
}

func TestConfigRejectsNegativeFailurePacing(t *testing.T) {
	for _, c := range []Config{{FailureQPS: -1}, {FailureBurst: -1}} {
		c.Client = fake.NewSimpleClientset()
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
