// Package cmrestart kills a standalone `skiff controller-manager` with
// SIGKILL in the middle of a rollout and checks that its successor finishes
// it without duplicate pods or lost progress.
package cmrestart

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-sh/skiff/internal/hollownode"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func startCM(t *testing.T, kubeconfig string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(framework.Binary(t), "controller-manager", "--kubeconfig", kubeconfig)
	if err := framework.StartProcess(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestControllerManagerKilledMidRollout(t *testing.T) {
	srv := framework.StartServer(t, "--disable-controllers")
	cs := srv.Client()
	ctx := framework.Context(t, 4*time.Minute)
	nodes, err := hollownode.New(hollownode.Config{Client: cs, Count: 3, Pods: "110"})
	if err != nil {
		t.Fatal(err)
	}
	nctx, stopNodes := context.WithCancel(context.Background())
	t.Cleanup(stopNodes)
	go nodes.Run(nctx)
	<-nodes.Ready()

	first := startCM(t, srv.Kubeconfig)
	const replicas, surge, unavailable = 60, 10, 5
	r := int32(replicas)
	s, u := intstr.FromInt(surge), intstr.FromInt(unavailable)
	labels := map[string]string{"app": "roll"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "roll", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &r, Selector: &metav1.LabelSelector{MatchLabels: labels},
			MinReadySeconds: 1, // each step waits, so the rollout is slow enough to interrupt
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "app:1"}}}},
		},
	}
	if d, err = cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rolledOut := func(gen int64) bool {
		cur, err := cs.AppsV1().Deployments("default").Get(ctx, "roll", metav1.GetOptions{})
		return err == nil && cur.Status.ObservedGeneration >= gen && cur.Status.UpdatedReplicas == r &&
			cur.Status.AvailableReplicas == r && cur.Status.Replicas == r
	}
	waitUntil(t, 90*time.Second, "first rollout", func() bool { return rolledOut(1) })

	// Track the most pods alive at once from here on.
	var mu sync.Mutex
	maxAlive := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=roll"})
			if err != nil {
				continue
			}
			n := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil {
					n++
				}
			}
			mu.Lock()
			maxAlive = max(maxAlive, n)
			mu.Unlock()
		}
	}()

	d, _ = cs.AppsV1().Deployments("default").Get(ctx, "roll", metav1.GetOptions{})
	d.Spec.Template.Spec.Containers[0].Image = "app:2"
	if _, err := cs.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Kill the controller manager once the new ReplicaSet has grown.
	var newRS string
	waitUntil(t, 60*time.Second, "rollout under way", func() bool {
		rss, err := cs.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=roll"})
		if err != nil {
			return false
		}
		for _, rs := range rss.Items {
			if rs.Spec.Template.Spec.Containers[0].Image == "app:2" && *rs.Spec.Replicas >= 20 && *rs.Spec.Replicas < replicas {
				newRS = rs.Name
				return true
			}
		}
		return false
	})
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	t.Logf("killed the controller manager mid-rollout (new ReplicaSet %s)", newRS)
	startCM(t, srv.Kubeconfig)
	waitUntil(t, 90*time.Second, "rollout finished by the successor", func() bool { return rolledOut(2) })
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if maxAlive > replicas+surge {
		t.Errorf("%d pods alive at once, want at most replicas+maxSurge = %d", maxAlive, replicas+surge)
	}
	rss, err := cs.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=roll"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 2 {
		t.Errorf("%d ReplicaSets, want exactly the old and the new one", len(rss.Items))
	}
	for _, rs := range rss.Items {
		if rs.Spec.Template.Spec.Containers[0].Image == "app:2" && rs.Name != newRS {
			t.Errorf("the successor made a second new ReplicaSet %s (first was %s)", rs.Name, newRS)
		}
	}
	waitUntil(t, 30*time.Second, "exactly 60 pods of the new template", func() bool {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=roll"})
		if err != nil {
			return false
		}
		n := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				if p.Spec.Containers[0].Image != "app:2" {
					return false
				}
				n++
			}
		}
		return n == replicas
	})
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
