package node

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func TestKubeletRunsPods(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	// Own pod network per run, so concurrent runs on this machine do not
	// hand out the same addresses.
	cidr := fmt.Sprintf("10.%d.0.0/16", 100+n%100)
	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	const node = "kubelet-e2e"
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("skk%d", n%100000))

	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}

	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nd.Spec.PodCIDR == "" || !nodeReady(nd) {
		t.Fatalf("node %s: podCIDR %q, conditions %+v", node, nd.Spec.PodCIDR, nd.Status.Conditions)
	}
	podCIDR := netip.MustParsePrefix(nd.Spec.PodCIDR)
	info := nd.Status.NodeInfo
	t.Logf("node %s: podCIDR %s, capacity %v, runtime %s, kubelet %s, kernel %s, os %s", node, podCIDR,
		nd.Status.Capacity, info.ContainerRuntimeVersion, info.KubeletVersion, info.KernelVersion, info.OSImage)
	if !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://") || nd.Status.Capacity.Pods().Value() != 110 ||
		nd.Status.Capacity.Memory().IsZero() || nd.Status.Capacity.StorageEphemeral().IsZero() {
		t.Errorf("node status incomplete: %+v", nd.Status)
	}
	if _, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{}); err != nil {
		t.Errorf("node lease: %v", err)
	}

	// A pod with a web server in a second container: Running, Ready, an IP
	// from the node's podCIDR that the host reaches.
	web := framework.BusyboxPod("web", "sh", "-c", "echo hi; sleep 3600")
	web.Spec.InitContainers = []corev1.Container{{Name: "init", Image: framework.BusyboxImage, ImagePullPolicy: corev1.PullNever,
		Command: []string{"sh", "-c", "echo init"}}}
	web.Spec.Containers = append(web.Spec.Containers, corev1.Container{Name: "httpd", Image: framework.BusyboxImage,
		ImagePullPolicy: corev1.PullNever, Command: []string{"httpd", "-f", "-p", "8080"}, WorkingDir: "/tmp",
		Env: []corev1.EnvVar{{Name: "GREETING", Value: "hi"}}})
	if _, err := cs.CoreV1().Pods("default").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := framework.WaitPod(t, cs, "web", 60*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && framework.PodReady(p)
	})
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !podCIDR.Contains(ip) {
		t.Fatalf("pod IP %q not in podCIDR %s", p.Status.PodIP, podCIDR)
	}
	if p.Status.HostIP == "" || p.Status.StartTime == nil || len(p.Status.ContainerStatuses) != 2 {
		t.Errorf("pod status incomplete: %+v", p.Status)
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil || !strings.HasPrefix(c.ContainerID, "containerd://") || c.ImageID == "" || !c.Ready {
			t.Errorf("container %s: %+v", c.Name, c)
		}
	}
	if ics := p.Status.InitContainerStatuses; len(ics) != 1 || ics[0].State.Terminated == nil || ics[0].State.Terminated.Reason != "Completed" {
		t.Errorf("init container status: %+v", ics)
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
		if !slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == typ && c.Status == corev1.ConditionTrue }) {
			t.Errorf("condition %s not True: %+v", typ, p.Status.Conditions)
		}
	}
	cgroup := "/sys/fs/cgroup/memory/kubepods/besteffort/pod" + string(p.UID)
	if _, err := os.Stat(cgroup); err != nil {
		t.Errorf("pod cgroup: %v", err)
	}
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if conn, err = net.DialTimeout("tcp", net.JoinHostPort(p.Status.PodIP, "8080"), time.Second); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("connect to httpd in the pod at %s:8080: %v", p.Status.PodIP, err)
	} else {
		conn.Close()
	}

	// Restart policy Never and exit 3: Failed, exit code 3, reason Error.
	fail := framework.BusyboxPod("fail", "sh", "-c", "exit 3")
	fail.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := cs.CoreV1().Pods("default").Create(ctx, fail, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = framework.WaitPod(t, cs, "fail", 60*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("failed pod's container: %+v", p.Status.ContainerStatuses[0].State)
	}

	// restartPolicy OnFailure restarts a failing container.
	crash := framework.BusyboxPod("crash", "sh", "-c", "exit 1")
	crash.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	if _, err := cs.CoreV1().Pods("default").Create(ctx, crash, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The first back-off is 10 s.
	p = framework.WaitPod(t, cs, "crash", 30*time.Second, "restarted", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	if w := p.Status.ContainerStatuses[0].State.Waiting; p.Status.Phase != corev1.PodRunning || (w != nil && w.Reason != "CrashLoopBackOff") {
		t.Errorf("crashing pod: phase %s, %+v", p.Status.Phase, p.Status.ContainerStatuses[0])
	}

	// A missing image is reported, not retried forever silently.
	missing := framework.BusyboxPod("missing")
	missing.Spec.Containers[0].Image = "skiff.sh/test/no-such-image:1"
	if _, err := cs.CoreV1().Pods("default").Create(ctx, missing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = framework.WaitPod(t, cs, "missing", 30*time.Second, "waiting on its image", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "ErrImageNeverPull"
	})
	t.Logf("missing image: %s", p.Status.ContainerStatuses[0].State.Waiting.Message)

	// create → Running latency, image present.
	var lat []time.Duration
	for i := range 5 {
		name := fmt.Sprintf("lat-%d", i)
		start := time.Now()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, framework.BusyboxPod(name, "sleep", "3600"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		framework.WaitPod(t, cs, name, 30*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && framework.PodReady(p) })
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("create → Running and Ready (5 pods, one at a time): median %v, min %v, max %v",
		lat[2].Round(time.Millisecond), lat[0].Round(time.Millisecond), lat[4].Round(time.Millisecond))

	// Restarting the agent adopts running containers: same container, no restart.
	before, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.Stop()
	a.Start()
	time.Sleep(3 * time.Second) // a relist or two
	after, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range after.Status.ContainerStatuses {
		b, c := before.Status.ContainerStatuses[i], after.Status.ContainerStatuses[i]
		if c.ContainerID != b.ContainerID || c.RestartCount != 0 || c.State.Running == nil {
			t.Errorf("container %s after agent restart: %+v (before %s)", c.Name, c, b.ContainerID)
		}
	}
	if after.Status.PodIP != before.Status.PodIP {
		t.Errorf("pod IP changed over agent restart: %s → %s", before.Status.PodIP, after.Status.PodIP)
	}

	// Deleting the running pod: gone within its grace period (2 s), no
	// sandbox left.
	uid := string(before.UID)
	start := time.Now()
	if err := cs.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Since(start) > 2*time.Second+3*time.Second {
			t.Fatalf("pod web still there %v after delete (grace 2s)", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("pod web deleted after %v (grace period 2s)", time.Since(start).Round(time.Millisecond))

	// A container that ignores SIGTERM is killed when the grace period ends.
	stubborn := framework.BusyboxPod("stubborn", "sh", "-c", "trap '' TERM; sleep 3600")
	if _, err := cs.CoreV1().Pods("default").Create(ctx, stubborn, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, cs, "stubborn", 30*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	start = time.Now()
	if err := cs.CoreV1().Pods("default").Delete(ctx, "stubborn", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "stubborn", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Since(start) > 2*time.Second+3*time.Second {
			t.Fatalf("pod stubborn still there %v after delete (grace 2s)", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("pod ignoring SIGTERM gone after %v, before its 2s grace period", d)
	} else {
		t.Logf("pod ignoring SIGTERM deleted after %v (grace period 2s)", d.Round(time.Millisecond))
	}

	c, err := cri.Dial(containerd.Socket(a.DataDir), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sbs, err := c.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sbs) != 0 {
		t.Errorf("%d sandboxes of the deleted pod remain", len(sbs))
	}
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/memory/kubepods/*/pod" + uid); len(dirs) != 0 {
		t.Errorf("cgroup of the deleted pod: %v, want it gone", dirs)
	}
}

func nodeReady(nd *corev1.Node) bool {
	return readyCond(nd).Status == corev1.ConditionTrue
}
