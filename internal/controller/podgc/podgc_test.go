package podgc

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// podBuilder builds test pods: makePod("a").node("n1").phase(...).obj().
type podBuilder struct{ p *corev1.Pod }

func makePod(name string) podBuilder {
	return podBuilder{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
		CreationTimestamp: metav1.NewTime(epoch)}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}}
}
func (b podBuilder) node(n string) podBuilder { b.p.Spec.NodeName = n; return b }
func (b podBuilder) phase(ph corev1.PodPhase) podBuilder {
	b.p.Status.Phase = ph
	return b
}
func (b podBuilder) evicted() podBuilder {
	b.p.Status.Phase, b.p.Status.Reason = corev1.PodFailed, "Evicted"
	return b
}
func (b podBuilder) age(d time.Duration) podBuilder {
	b.p.CreationTimestamp = metav1.NewTime(epoch.Add(-d))
	return b
}
func (b podBuilder) terminating() podBuilder {
	t := metav1.NewTime(epoch)
	b.p.DeletionTimestamp = &t
	return b
}
func (b podBuilder) obj() *corev1.Pod { return b.p }

func node(name string, ready bool, taints ...corev1.Taint) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
}

func TestTerminatedBeyond(t *testing.T) {
	tests := []struct {
		name      string
		pods      []*corev1.Pod
		threshold int
		want      []string
	}{
		{"under threshold", []*corev1.Pod{makePod("a").phase(corev1.PodSucceeded).obj()}, 1, nil},
		{"oldest first", []*corev1.Pod{
			makePod("new").phase(corev1.PodSucceeded).age(time.Minute).obj(),
			makePod("old").phase(corev1.PodFailed).age(time.Hour).obj(),
			makePod("mid").phase(corev1.PodSucceeded).age(10 * time.Minute).obj(),
		}, 1, []string{"old", "mid"}},
		{"evicted before older", []*corev1.Pod{
			makePod("old").phase(corev1.PodSucceeded).age(time.Hour).obj(),
			makePod("evicted").evicted().age(time.Minute).obj(),
		}, 1, []string{"evicted"}},
		{"running pods do not count", []*corev1.Pod{
			makePod("r1").obj(), makePod("r2").obj(), makePod("p").phase(corev1.PodPending).obj(),
			makePod("done").phase(corev1.PodSucceeded).obj(),
		}, 1, nil},
		{"names break ties", []*corev1.Pod{
			makePod("b").phase(corev1.PodSucceeded).obj(), makePod("a").phase(corev1.PodSucceeded).obj(),
		}, 1, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range terminatedBeyond(tt.pods, tt.threshold) {
				got = append(got, p.Name)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("deleted %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("deleted %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestGC(t *testing.T) {
	tests := []struct {
		name      string
		threshold int
		pods      []*corev1.Pod
		informer  []*corev1.Node // nodes the informer knows
		api       []*corev1.Node // nodes the API has (live GET)
		wantGone  []string
		wantCond  []string // pods patched with DisruptionTarget
	}{
		{
			name:      "terminated beyond threshold",
			threshold: 2,
			pods: []*corev1.Pod{
				makePod("s1").node("n1").phase(corev1.PodSucceeded).age(3 * time.Hour).obj(),
				makePod("s2").node("n1").phase(corev1.PodSucceeded).age(2 * time.Hour).obj(),
				makePod("s3").node("n1").phase(corev1.PodFailed).age(time.Hour).obj(),
				makePod("run").node("n1").obj(),
			},
			informer: []*corev1.Node{node("n1", true)},
			api:      []*corev1.Node{node("n1", true)},
			wantGone: []string{"s1"},
		},
		{
			name:      "threshold 0 keeps every terminated pod",
			threshold: 0,
			pods:      []*corev1.Pod{makePod("s1").node("n1").phase(corev1.PodSucceeded).obj()},
			informer:  []*corev1.Node{node("n1", true)},
			api:       []*corev1.Node{node("n1", true)},
		},
		{
			name:      "orphans of a deleted node, marked then deleted",
			threshold: 100,
			pods: []*corev1.Pod{
				makePod("orphan").node("gone").obj(),
				makePod("orphan-done").node("gone").phase(corev1.PodSucceeded).obj(),
				makePod("kept").node("n1").obj(),
			},
			informer: []*corev1.Node{node("n1", true)},
			api:      []*corev1.Node{node("n1", true)},
			wantGone: []string{"orphan", "orphan-done"},
			wantCond: []string{"orphan"},
		},
		{
			name:      "node missing from the cache but found live is kept",
			threshold: 100,
			pods:      []*corev1.Pod{makePod("p").node("late").obj()},
			api:       []*corev1.Node{node("late", true)},
		},
		{
			name:      "unscheduled terminating",
			threshold: 100,
			pods: []*corev1.Pod{
				makePod("unsched").terminating().obj(),
				makePod("unsched-live").obj(),
				makePod("sched").node("n1").terminating().obj(),
			},
			informer: []*corev1.Node{node("n1", true)},
			api:      []*corev1.Node{node("n1", true)},
			wantGone: []string{"unsched"},
		},
		{
			name:      "terminating on an out-of-service node",
			threshold: 100,
			pods: []*corev1.Pod{
				makePod("oos").node("n1").terminating().obj(),
				makePod("oos-live").node("n1").obj(),
				makePod("ready-node").node("n2").terminating().obj(),
			},
			informer: []*corev1.Node{node("n1", false, corev1.Taint{Key: corev1.TaintNodeOutOfService, Effect: corev1.TaintEffectNoExecute}),
				node("n2", true, corev1.Taint{Key: corev1.TaintNodeOutOfService, Effect: corev1.TaintEffectNoExecute})},
			wantGone: []string{"oos"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			for _, p := range tt.pods {
				objs = append(objs, p)
			}
			for _, n := range tt.api {
				objs = append(objs, n)
			}
			cs := fake.NewClientset(objs...)
			inf := informers.NewSharedInformerFactory(cs, 0)
			c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(),
				Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
				Options: controller.Options{TerminatedPodGCThreshold: tt.threshold}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.nodeQueue.ShutDown()
			c.quarantine = 0 // the quarantine is the delaying queue's business
			for _, p := range tt.pods {
				inf.Core().V1().Pods().Informer().GetIndexer().Add(p)
			}
			for _, n := range tt.informer {
				inf.Core().V1().Nodes().Informer().GetIndexer().Add(n)
			}
			if err := c.gc(context.Background()); err != nil {
				t.Fatal(err)
			}
			var gone, cond []string
			for _, a := range cs.Actions() {
				switch a := a.(type) {
				case clienttesting.DeleteAction:
					if a.GetResource().Resource == "pods" {
						gone = append(gone, a.GetName())
						if gp := a.GetDeleteOptions().GracePeriodSeconds; gp == nil || *gp != 0 {
							t.Errorf("delete %s without grace period 0", a.GetName())
						}
					}
				case clienttesting.PatchAction:
					if a.GetSubresource() != "status" {
						t.Errorf("patch of %q, want status", a.GetSubresource())
					}
					var p struct {
						Status corev1.PodStatus `json:"status"`
					}
					if err := json.Unmarshal(a.GetPatch(), &p); err != nil {
						t.Fatal(err)
					}
					if p.Status.Phase != corev1.PodFailed {
						t.Errorf("patch sets phase %q, want Failed", p.Status.Phase)
					}
					if len(p.Status.Conditions) == 1 && p.Status.Conditions[0].Type == corev1.DisruptionTarget &&
						p.Status.Conditions[0].Reason == reasonDeletionByPodGC {
						cond = append(cond, a.GetName())
					}
				}
			}
			if !sameSet(gone, tt.wantGone) {
				t.Errorf("deleted %v, want %v", gone, tt.wantGone)
			}
			if !sameSet(cond, tt.wantCond) {
				t.Errorf("DisruptionTarget on %v, want %v", cond, tt.wantCond)
			}
		})
	}
}

func TestQuarantineDelaysOrphans(t *testing.T) {
	p := makePod("orphan").node("gone").obj()
	cs := fake.NewClientset(p)
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, _ := New(&controller.Context{Client: cs, Informers: inf, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer c.nodeQueue.ShutDown()
	c.quarantine = 200 * time.Millisecond
	inf.Core().V1().Pods().Informer().GetIndexer().Add(p)
	if err := c.gc(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(cs.Actions()); n != 0 {
		t.Fatalf("%d actions during quarantine, want none", n)
	}
	time.Sleep(300 * time.Millisecond)
	if err := c.gc(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(context.Background(), "orphan", metav1.GetOptions{}); err == nil {
		t.Fatal("orphan still there after the quarantine")
	}
}

func sameSet(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
