package workloads

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSilentNodeIsTaintedAndItsPodsReplaced: a node that stops
// heartbeating becomes Ready=Unknown with the unreachable taints; its pods
// are evicted after their tolerationSeconds and replaced on other nodes;
// when it heartbeats again the taints go away.
func TestSilentNodeIsTaintedAndItsPodsReplaced(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "evict")
	d := deployment("web", 6, "nginx:1", 1, 0)
	two := int64(2)
	d.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists,
		Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &two}}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var victim string
	eventually(t, 60*time.Second, "6 pods running", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
		if err != nil || len(pods.Items) != 6 {
			return false, err
		}
		victim = pods.Items[0].Spec.NodeName
		return true, nil
	})
	nodes.SetHeartbeat(victim, false)
	defer nodes.SetHeartbeat(victim, true)
	start := time.Now()
	eventually(t, 40*time.Second, "silent node Unknown and tainted", func() (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionUnknown && c.Reason == "NodeStatusUnknown" {
				ready = true
			}
		}
		tainted := false
		for _, tn := range n.Spec.Taints {
			if tn.Key == "node.kubernetes.io/unreachable" && tn.Effect == corev1.TaintEffectNoExecute {
				tainted = true
			}
		}
		return ready && tainted, fmt.Errorf("conditions %v taints %v", n.Status.Conditions, n.Spec.Taints)
	})
	t.Logf("node %s marked unreachable %v after its heartbeats stopped", victim, time.Since(start).Round(time.Second))
	eventually(t, 40*time.Second, "pods replaced on the other nodes", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		healthy := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName == victim && p.DeletionTimestamp == nil {
				return false, fmt.Errorf("pod %s still on %s without deletion", p.Name, victim)
			}
			if p.Spec.NodeName != victim && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				healthy++
			}
		}
		return healthy == 6, fmt.Errorf("%d running elsewhere", healthy)
	})
	nodes.SetHeartbeat(victim, true)
	eventually(t, 40*time.Second, "node healthy and untainted again", func() (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, tn := range n.Spec.Taints {
			if tn.Key == "node.kubernetes.io/unreachable" || tn.Key == "node.kubernetes.io/not-ready" {
				return false, fmt.Errorf("taint %v remains", tn)
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
}
