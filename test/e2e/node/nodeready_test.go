package node

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestNodeNotReadyUntilNetwork: as upstream's kubelet, a new node is
// registered NotReady (the runtime has no pod network config yet: the CNI
// config is written once the node has its podCIDR) with the not-ready
// NoSchedule taint; by the time the agent says it is ready the node is
// Ready and the taint is gone, and a pod created then runs.
func TestNodeNotReadyUntilNetwork(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	cidr, bridge := fmt.Sprintf("10.%d.0.0/16", 100+n%50), fmt.Sprintf("snr%d", n%100000)
	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	const node = "notready-net"

	w, err := cs.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", node).String()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var seen []*corev1.Node
	collected := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				if nd, ok := ev.Object.(*corev1.Node); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
					seen = append(seen, nd)
				}
			case <-stop:
				return
			}
		}
	}()

	a := framework.StartAgent(t, srv, node, bridge)
	// The agent is ready: what the server has now must be Ready, untainted.
	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the watch catch up with the Get
	close(stop)
	<-collected

	if len(seen) == 0 {
		t.Fatal("the watch saw no event for the node")
	}
	first := seen[0]
	if r := readyCond(first); r.Status != corev1.ConditionFalse || r.Reason != "KubeletNotReady" ||
		!strings.Contains(r.Message, "container runtime network not ready: NetworkReady=false") {
		t.Errorf("registered node's Ready condition %+v, want False, KubeletNotReady, naming the runtime's network", r)
	}
	if !slices.ContainsFunc(first.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeNotReady && t.Effect == corev1.TaintEffectNoSchedule
	}) {
		t.Errorf("registered node's taints %v, want node.kubernetes.io/not-ready:NoSchedule", first.Spec.Taints)
	}
	if r := readyCond(nd); r.Status != corev1.ConditionTrue || r.Reason != "KubeletReady" {
		t.Errorf("Ready condition when the agent is ready: %+v, want True/KubeletReady", r)
	}
	if notReadyTaint(nd) {
		t.Errorf("taints when the agent is ready: %v, want no not-ready taint", nd.Spec.Taints)
	}
	// Ready only came after the pod network: no version both Ready and
	// without a podCIDR.
	for _, v := range seen {
		if readyCond(v).Status == corev1.ConditionTrue && v.Spec.PodCIDR == "" {
			t.Errorf("version %s is Ready before it has a podCIDR (so before its CNI config)", v.ResourceVersion)
		}
	}

	if out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput(); err != nil {
		t.Fatalf("image import: %v\n%s", err, out)
	}
	pod := framework.BusyboxPod("after-ready", "sleep", "3600")
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, cs, pod.Name, 2*time.Minute, "Running on the node", func(p *corev1.Pod) bool {
		return p.Spec.NodeName == node && p.Status.Phase == corev1.PodRunning
	})
}

// notReadyTaint reports whether the node carries a not-ready taint, which
// the node lifecycle controller removes once the node is Ready.
func notReadyTaint(nd *corev1.Node) bool {
	return slices.ContainsFunc(nd.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
}

func readyCond(nd *corev1.Node) corev1.NodeCondition {
	for _, c := range nd.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}
