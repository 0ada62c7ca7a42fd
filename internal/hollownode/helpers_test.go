package hollownode

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// fastTiming keeps the kubelet's shape at test speed.
var fastTiming = timing{
	leaseRenew:   100 * time.Millisecond,
	statusReport: time.Second,
	stopGrace:    200 * time.Millisecond,
	crashBackoff: 300 * time.Millisecond,
}

// start runs hollow nodes against a fake clientset holding objs and waits
// until they are ready and the pod watch is open (the fake drops events
// between its list and watch).
func start(t *testing.T, cfg Config, objs ...runtime.Object) (*Nodes, *fake.Clientset) {
	t.Helper()
	cs := fake.NewSimpleClientset(objs...)
	watching := make(chan struct{})
	var once sync.Once
	cs.PrependWatchReactor("pods", func(a clienttesting.Action) (bool, watch.Interface, error) {
		w, err := cs.Tracker().Watch(a.GetResource(), a.GetNamespace())
		once.Do(func() { close(watching) })
		return true, w, err
	})
	cfg.Client = cs
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter(t), nil))
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.timing = fastTiming
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	for _, ch := range []<-chan struct{}{n.Ready(), watching} {
		select {
		case <-ch:
		case err := <-done:
			t.Fatalf("Run returned before ready: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("not ready after 10s")
		}
	}
	return n, cs
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// makePod builds a pod bound to node; mutators adjust it.
func makePod(name, node string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{NodeName: node, RestartPolicy: corev1.RestartPolicyAlways,
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func exitAfter(d, code string, policy corev1.RestartPolicy) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Annotations = map[string]string{AnnotationExitAfter: d, AnnotationExitCode: code}
		p.Spec.RestartPolicy = policy
	}
}

func getPod(t *testing.T, cs *fake.Clientset, name string) (*corev1.Pod, error) {
	t.Helper()
	return cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func runningReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
}

type tw struct{ t *testing.T }

func (w tw) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func testWriter(t *testing.T) io.Writer { return tw{t} }
