package statefuldaemon

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// daemonNodes returns the nodes the DaemonSet's ready, non-terminating
// pods run on, sorted, and the images they run.
func daemonNodes(ctx context.Context, cs kubernetes.Interface, ns string) ([]string, map[string]bool, error) {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	if err != nil {
		return nil, nil, err
	}
	var nodes []string
	images := map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		nodes = append(nodes, p.Spec.NodeName)
		images[p.Spec.Containers[0].Image] = true
		if !controller.IsPodReady(&p) {
			return nil, nil, fmt.Errorf("pod %s not ready", p.Name)
		}
	}
	sort.Strings(nodes)
	return nodes, images, nil
}

// TestDaemonSet: one pod per node, a pod on a node that joins later, and a
// rolling template change, followed by kubectl.
func TestDaemonSet(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "ds")
	k := srv.NewKubectl(t, framework.DefaultKubectl)
	labels := map[string]string{"app": "agent"}
	_, err := cs.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "agent:1"}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := k.MustRun("-n", ns, "rollout", "status", "daemonset/agent", "--timeout=60s")
	if !strings.Contains(out, "successfully rolled out") {
		t.Fatalf("rollout status: %s", out)
	}
	want := []string{"sd-node-0", "sd-node-1", "sd-node-2"}
	eventually(t, 30*time.Second, "one pod per node", func() (bool, error) {
		nodes, _, err := daemonNodes(ctx, cs, ns)
		return fmt.Sprint(nodes) == fmt.Sprint(want), fmt.Errorf("pods on %v: %v", nodes, err)
	})
	pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	p := pods.Items[0]
	if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == "" || p.Labels["pod-template-generation"] != "1" {
		t.Errorf("daemon pod labels %v", p.Labels)
	}
	if a := p.Spec.Affinity; a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil ||
		a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields[0].Values[0] != p.Spec.NodeName {
		t.Errorf("daemon pod affinity %+v, node %s", p.Spec.Affinity, p.Spec.NodeName)
	}

	// A node that joins gets a pod.
	extra, stop := context.WithCancel(context.Background())
	startNodes(t, extra, "sd-extra-", 1)
	defer func() {
		if t.Failed() {
			dump(t, ns)
		}
		// Later tests must not be scheduled onto a stopped node.
		stop()
		_ = cs.CoreV1().Nodes().Delete(context.Background(), "sd-extra-0", metav1.DeleteOptions{})
	}()
	want = []string{"sd-extra-0", "sd-node-0", "sd-node-1", "sd-node-2"}
	eventually(t, 30*time.Second, "a pod on the new node", func() (bool, error) {
		nodes, _, err := daemonNodes(ctx, cs, ns)
		ds, err2 := cs.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		return err2 == nil && fmt.Sprint(nodes) == fmt.Sprint(want) && ds.Status.DesiredNumberScheduled == 4 && ds.Status.NumberAvailable == 4,
			fmt.Errorf("pods on %v: %v", nodes, err)
	})

	// A template change rolls out node by node.
	k.MustRun("-n", ns, "set", "image", "daemonset/agent", "c=agent:2")
	out = k.MustRun("-n", ns, "rollout", "status", "daemonset/agent", "--timeout=60s")
	if !strings.Contains(out, "successfully rolled out") {
		t.Fatalf("rollout status: %s", out)
	}
	eventually(t, 30*time.Second, "every node on the new template", func() (bool, error) {
		nodes, images, err := daemonNodes(ctx, cs, ns)
		return fmt.Sprint(nodes) == fmt.Sprint(want) && len(images) == 1 && images["agent:2"], fmt.Errorf("pods on %v images %v: %v", nodes, images, err)
	})
	ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := ds.Status; st.DesiredNumberScheduled != 4 || st.CurrentNumberScheduled != 4 || st.UpdatedNumberScheduled != 4 ||
		st.NumberReady != 4 || st.NumberAvailable != 4 || st.NumberUnavailable != 0 || st.NumberMisscheduled != 0 || st.ObservedGeneration != ds.Generation {
		t.Fatalf("status %+v", st)
	}
	hist := k.MustRun("-n", ns, "rollout", "history", "daemonset/agent")
	if !strings.Contains(hist, "1 ") || !strings.Contains(hist, "2 ") {
		t.Fatalf("rollout history:\n%s", hist)
	}

	// The node leaves: its pod goes with it.
	stop()
	if err := cs.CoreV1().Nodes().Delete(ctx, "sd-extra-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the pod of the deleted node gone", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		ds, err2 := cs.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		return err == nil && err2 == nil && len(pods.Items) == 3 && ds.Status.DesiredNumberScheduled == 3, err
	})
}
