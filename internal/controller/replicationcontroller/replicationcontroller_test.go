package replicationcontroller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

func rc(replicas int32) *corev1.ReplicationController {
	labels := map[string]string{"app": "web"}
	return &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-rc", Generation: 2},
		Spec: corev1.ReplicationControllerSpec{Replicas: &replicas, Selector: labels, MinReadySeconds: 3,
			Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}}},
		Status: corev1.ReplicationControllerStatus{Replicas: 1, ReadyReplicas: 1, ObservedGeneration: 1,
			Conditions: []corev1.ReplicationControllerCondition{{Type: corev1.ReplicationControllerReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate"}}},
	}
}

func TestConversionRoundTrip(t *testing.T) {
	in := rc(3)
	rs := toReplicaSet(in)
	if rs.Spec.Selector.MatchLabels["app"] != "web" || *rs.Spec.Replicas != 3 || rs.Spec.MinReadySeconds != 3 || rs.Status.Conditions[0].Reason != "FailedCreate" {
		t.Fatalf("replicaset %+v", rs)
	}
	out := toReplicationController(rs)
	out.TypeMeta = in.TypeMeta
	if !apiequality.Semantic.DeepEqual(in, out) {
		t.Fatalf("round trip changed the object:\n%+v\n%+v", in, out)
	}
}

func TestControllerCreatesOwnedPods(t *testing.T) {
	cs := fake.NewClientset(rc(2))
	var seq atomic.Int32
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			p.Name = fmt.Sprintf("%s%d", p.GenerateName, seq.Add(1))
		}
		return false, nil, nil
	})
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inf.Start(ctx.Done())
	go c.Run(ctx, 1)
	for {
		pods, _ := cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
		got, _ := cs.CoreV1().ReplicationControllers("ns").Get(ctx, "web", metav1.GetOptions{})
		if len(pods.Items) == 2 && got.Status.Replicas == 2 && got.Status.ObservedGeneration == 2 {
			for _, p := range pods.Items {
				ref := metav1.GetControllerOf(&p)
				if ref == nil || ref.Kind != "ReplicationController" || ref.APIVersion != "v1" || ref.UID != "uid-rc" {
					t.Fatalf("pod %s controller %+v", p.Name, ref)
				}
			}
			if len(got.Status.Conditions) != 0 {
				t.Fatalf("stale failure condition kept: %+v", got.Status.Conditions)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d pods, status %+v", len(pods.Items), got.Status)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
