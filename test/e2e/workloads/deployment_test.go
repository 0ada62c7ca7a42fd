package workloads

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func deployment(name string, replicas int32, image string, surge, unavailable int) *appsv1.Deployment {
	s, u := intstr.FromInt(surge), intstr.FromInt(unavailable)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
		},
	}
}

func rolledOut(d *appsv1.Deployment) bool {
	r := *d.Spec.Replicas
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == r &&
		d.Status.Replicas == r && d.Status.AvailableReplicas == r
}

// TestRollingUpdateKeepsAvailability: during a rolling update the
// Deployment never has fewer than replicas-maxUnavailable available pods,
// and never more than replicas+maxSurge pods.
func TestRollingUpdateKeepsAvailability(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "rolling")
	d, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("web", 6, "nginx:1", 2, 1), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "6 available replicas", func() (bool, error) {
		d, err = cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && rolledOut(d), err
	})
	if d.Annotations["deployment.kubernetes.io/revision"] != "1" {
		t.Fatalf("revision annotation %q, want 1", d.Annotations["deployment.kubernetes.io/revision"])
	}

	// Watch the Deployment's status and the pods while the update runs.
	dw, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=web", ResourceVersion: d.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer dw.Stop()
	var mu sync.Mutex
	var minAvailable int32 = 1 << 30
	maxPods := 0
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
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
			maxPods = max(maxPods, n)
			mu.Unlock()
		}
	}()
	d.Spec.Template.Spec.Containers[0].Image = "nginx:2"
	if _, err := cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(90 * time.Second)
	done := false
	for !done {
		select {
		case ev, ok := <-dw.ResultChan():
			if !ok {
				t.Fatal("watch closed")
			}
			if ev.Type != watch.Modified {
				continue
			}
			cur := ev.Object.(*appsv1.Deployment)
			mu.Lock()
			minAvailable = min(minAvailable, cur.Status.AvailableReplicas)
			mu.Unlock()
			done = rolledOut(cur) && cur.Generation == d.Generation+1
		case <-deadline:
			t.Fatal("rolling update did not finish in 90s")
		}
	}
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	if minAvailable < 5 {
		t.Errorf("available replicas dropped to %d during the update, want >= replicas-maxUnavailable = 5", minAvailable)
	}
	if maxPods > 8 {
		t.Errorf("%d pods ran at once, want <= replicas+maxSurge = 8", maxPods)
	}
	rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 2 {
		t.Fatalf("%d ReplicaSets, want the old and the new", len(rss.Items))
	}
	for _, rs := range rss.Items {
		img := rs.Spec.Template.Spec.Containers[0].Image
		switch {
		case img == "nginx:1" && *rs.Spec.Replicas != 0:
			t.Errorf("old ReplicaSet still has %d replicas", *rs.Spec.Replicas)
		case img == "nginx:2" && rs.Annotations["deployment.kubernetes.io/revision"] != "2":
			t.Errorf("new ReplicaSet revision %q, want 2", rs.Annotations["deployment.kubernetes.io/revision"])
		}
	}
	pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	running := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			running++
			if p.Spec.Containers[0].Image != "nginx:2" {
				t.Errorf("pod %s still runs %s", p.Name, p.Spec.Containers[0].Image)
			}
		}
	}
	if running != 6 {
		t.Errorf("%d pods after the rollout, want 6", running)
	}
}

// TestKubectlRollout drives a Deployment with real kubectl: status,
// history, undo, pause, resume, restart, scale.
func TestKubectlRollout(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "rollout")
	k := srv.NewKubectl(t, framework.DefaultKubectl)
	k.MustRun("-n", ns, "create", "deployment", "app", "--image=nginx:1", "--replicas=3")
	out := k.MustRun("-n", ns, "rollout", "status", "deployment/app", "--timeout=60s")
	if !strings.Contains(out, "successfully rolled out") {
		t.Fatalf("rollout status: %s", out)
	}
	k.MustRun("-n", ns, "set", "image", "deployment/app", "*=nginx:2")
	k.MustRun("-n", ns, "annotate", "deployment/app", "kubernetes.io/change-cause=to nginx 2")
	k.MustRun("-n", ns, "rollout", "status", "deployment/app", "--timeout=60s")
	hist := k.MustRun("-n", ns, "rollout", "history", "deployment/app")
	if !strings.Contains(hist, "1 ") || !strings.Contains(hist, "2 ") || !strings.Contains(hist, "to nginx 2") {
		t.Fatalf("rollout history lacks revisions 1 and 2 or the change cause:\n%s", hist)
	}
	rev := k.MustRun("-n", ns, "rollout", "history", "deployment/app", "--revision=1")
	if !strings.Contains(rev, "nginx:1") {
		t.Fatalf("revision 1 should show nginx:1:\n%s", rev)
	}

	k.MustRun("-n", ns, "rollout", "undo", "deployment/app")
	k.MustRun("-n", ns, "rollout", "status", "deployment/app", "--timeout=60s")
	img := k.MustRun("-n", ns, "get", "deployment/app", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	if img != "nginx:1" {
		t.Fatalf("after undo the image is %q, want nginx:1", img)
	}
	if a := k.MustRun("-n", ns, "get", "deployment/app", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"); a != "3" {
		t.Fatalf("undo makes revision 3, got %q", a)
	}

	k.MustRun("-n", ns, "rollout", "pause", "deployment/app")
	k.MustRun("-n", ns, "set", "image", "deployment/app", "*=nginx:3")
	time.Sleep(2 * time.Second)
	rss, _ := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	for _, rs := range rss.Items {
		if rs.Spec.Template.Spec.Containers[0].Image == "nginx:3" {
			t.Fatal("a paused Deployment must not roll out")
		}
	}
	cond := k.MustRun("-n", ns, "get", "deployment/app", "-o", `jsonpath={.status.conditions[?(@.type=="Progressing")].reason}`)
	if cond != "DeploymentPaused" {
		t.Fatalf("Progressing reason %q, want DeploymentPaused", cond)
	}
	k.MustRun("-n", ns, "rollout", "resume", "deployment/app")
	k.MustRun("-n", ns, "rollout", "status", "deployment/app", "--timeout=60s")

	before := k.MustRun("-n", ns, "get", "pods", "-l", "app=app", "-o", "jsonpath={.items[*].metadata.name}")
	k.MustRun("-n", ns, "rollout", "restart", "deployment/app")
	k.MustRun("-n", ns, "rollout", "status", "deployment/app", "--timeout=60s")
	eventually(t, 30*time.Second, "restart to replace every pod", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=app"})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if strings.Contains(before, p.Name) {
				return false, fmt.Errorf("pod %s from before the restart remains", p.Name)
			}
		}
		return len(pods.Items) == 3, nil
	})

	k.MustRun("-n", ns, "scale", "deployment/app", "--replicas=5")
	k.MustRun("-n", ns, "rollout", "status", "deployment/app", "--timeout=60s")
	if r := k.MustRun("-n", ns, "get", "deployment/app", "-o", "jsonpath={.status.availableReplicas}"); r != "5" {
		t.Fatalf("after scale to 5: %s available", r)
	}
}

// TestForegroundCascadingDelete: the Deployment stays (with the
// foregroundDeletion finalizer) until its ReplicaSet and pods are gone.
func TestForegroundCascadingDelete(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "foreground")
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("fg", 3, "nginx:1", 1, 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "3 available", func() (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "fg", metav1.GetOptions{})
		return err == nil && rolledOut(d), err
	})
	fg := metav1.DeletePropagationForeground
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, "fg", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "fg", metav1.GetOptions{})
	if err == nil {
		if d.DeletionTimestamp == nil || len(d.Finalizers) == 0 || d.Finalizers[0] != metav1.FinalizerDeleteDependents {
			t.Fatalf("deployment being deleted in the foreground: deletionTimestamp %v finalizers %v", d.DeletionTimestamp, d.Finalizers)
		}
	}
	sawDeploymentAfterPods := false
	eventually(t, 60*time.Second, "deployment, replica set and pods gone", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		_, derr := cs.AppsV1().Deployments(ns).Get(ctx, "fg", metav1.GetOptions{})
		if len(pods.Items) > 0 && apierrors.IsNotFound(derr) {
			return false, fmt.Errorf("deployment gone while %d pods remain", len(pods.Items))
		}
		if len(pods.Items) == 0 && derr == nil {
			sawDeploymentAfterPods = true
		}
		return len(pods.Items) == 0 && len(rss.Items) == 0 && apierrors.IsNotFound(derr), nil
	})
	_ = sawDeploymentAfterPods
}

// TestOrphanDelete: orphaned ReplicaSets keep running without an owner.
func TestOrphanDelete(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "orphan")
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("or", 2, "nginx:1", 1, 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "2 available", func() (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "or", metav1.GetOptions{})
		return err == nil && rolledOut(d), err
	})
	orphan := metav1.DeletePropagationOrphan
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, "or", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "deployment gone, replica set orphaned", func() (bool, error) {
		_, derr := cs.AppsV1().Deployments(ns).Get(ctx, "or", metav1.GetOptions{})
		rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(rss.Items) != 1 {
			return false, err
		}
		return apierrors.IsNotFound(derr) && len(rss.Items[0].OwnerReferences) == 0, nil
	})
	pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if len(pods.Items) != 2 {
		t.Fatalf("orphaned ReplicaSet's pods: %d, want 2", len(pods.Items))
	}
}
