package quota

import (
	"fmt"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/hollownode"
)

// TestPodGCOrphans: pods bound to a Node that is deleted are marked
// Failed with DisruptionTarget (DeletionByPodGC) and deleted after the
// 40 s quarantine. It runs in parallel with the rest: most of it is
// waiting out the quarantine.
func TestPodGCOrphans(t *testing.T) {
	ctx, cs := setup(t)
	t.Parallel()
	ns := namespace(t, ctx, cs, "podgc-orphans")
	// A Node no hollow kubelet serves, so nothing recreates it.
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ghost-node"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"o1", "o2"} {
		p := pod(name, nil, "")
		p.Spec.NodeName = "ghost-node"
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := cs.CoreV1().Nodes().Delete(ctx, "ghost-node", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deletedAt := time.Now()

	marked, gone := map[string]bool{}, map[string]bool{}
	timeout := time.After(120 * time.Second) // up to a 20 s pass + 40 s quarantine + a 20 s pass
	for len(gone) < 2 {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed")
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			switch ev.Type {
			case watch.Modified:
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "DeletionByPodGC" &&
						p.Status.Phase == corev1.PodFailed {
						marked[p.Name] = true
					}
				}
			case watch.Deleted:
				gone[p.Name] = true
			}
		case <-timeout:
			t.Fatalf("orphans not collected: marked %v, deleted %v", marked, gone)
		}
	}
	if elapsed := time.Since(deletedAt); elapsed < 35*time.Second {
		t.Errorf("orphans deleted %v after their node, before the quarantine", elapsed)
	}
	if len(marked) != 2 {
		t.Errorf("DisruptionTarget seen on %v, want both pods", marked)
	}
}

// TestPodGCTerminatedThreshold: terminated pods beyond the threshold (3,
// set on the standalone manager) are deleted, oldest first.
func TestPodGCTerminatedThreshold(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "podgc-terminated")
	const n = gcThreshold + 2
	for i := 0; i < n; i++ {
		p := pod(fmt.Sprintf("t%d", i), nil, "")
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Annotations = map[string]string{hollownode.AnnotationExitAfter: "1s"}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Distinct creation timestamps (seconds) make "oldest" unambiguous.
		time.Sleep(1100 * time.Millisecond)
	}
	eventually(t, 90*time.Second, "terminated pods beyond the threshold to be deleted", func() (bool, error) {
		all, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		terminated := 0
		var ours []string
		for _, p := range all.Items {
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				terminated++
			}
			if p.Namespace == ns {
				ours = append(ours, p.Name)
			}
		}
		if terminated > gcThreshold || len(ours) >= n {
			return false, errorf("%d terminated pods in the cluster, ours left: %v", terminated, ours)
		}
		// What is left of ours is the newest: a suffix of t0…t4.
		sort.Strings(ours)
		for i, name := range ours {
			if want := fmt.Sprintf("t%d", n-len(ours)+i); name != want {
				return false, errorf("left %v, want the newest", ours)
			}
		}
		return true, nil
	})
}
