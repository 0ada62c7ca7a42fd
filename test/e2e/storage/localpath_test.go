package storage

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/server/statsapi"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestLocalPathOnNode: a pod writes to a local-path claim on a real
// kubelet, a second pod on the same claim reads it, a read-only mount
// cannot write, and deleting the claim removes the volume and its
// directory.
func TestLocalPathOnNode(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 100+(n+57)%100))
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	const node = "storage-e2e"
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("sks%d", n%100000))
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	until(t, 60*time.Second, "node registered", func() bool {
		nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err == nil && nd.Annotations["skiff.sh/local-path-dir"] == filepath.Join(a.DataDir, "storage")
	})

	if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("data", "-", "1Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	succeeded := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	run := func(name string, readOnly bool, script string) *corev1.Pod {
		t.Helper()
		p := claimPod(name, "data")
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.Containers[0].Command = []string{"sh", "-c", script}
		p.Spec.Volumes[0].PersistentVolumeClaim.ReadOnly = readOnly
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return framework.WaitPod(t, cs, name, 90*time.Second, "finished", succeeded)
	}
	start := time.Now()
	if p := run("writer", false, "echo persisted > /data/f"); p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("writer: %s %+v", p.Status.Phase, p.Status.ContainerStatuses)
	}
	t.Logf("writer pod created → Succeeded (provision, bind, mount, run) in %v", time.Since(start).Round(time.Millisecond))
	c := getClaim(t, cs, "data")
	dir := filepath.Join(a.DataDir, "storage", c.Spec.VolumeName+"_default_data")
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "persisted\n" {
		t.Fatalf("data on the node at %s: %q, %v", dir, b, err)
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "writer", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// A running pod's claim shows in the kubelet's stats summary with the
	// claim's name and the volume's usage.
	holder := claimPod("holder", "data")
	holder.Spec.Containers[0].Command = []string{"sh", "-c", "head -c 300000 /dev/zero > /data/blob && exec sleep 3600"}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, holder, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, cs, "holder", 90*time.Second, "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	var vol *statsapi.VolumeStats
	until(t, 30*time.Second, "the claim in the holder's volume stats", func() bool {
		b, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy/stats/summary").DoRaw(ctx)
		var s statsapi.Summary
		if err != nil || json.Unmarshal(b, &s) != nil {
			return false
		}
		for _, p := range s.Pods {
			for i, v := range p.VolumeStats {
				if p.PodRef.Name == "holder" && v.Name == "data" && v.UsedBytes != nil && *v.UsedBytes >= 300000 {
					vol = &p.VolumeStats[i]
				}
			}
		}
		return vol != nil
	})
	if r := vol.PVCRef; r == nil || r.Name != "data" || r.Namespace != "default" || vol.CapacityBytes == nil || *vol.CapacityBytes == 0 {
		t.Errorf("claim volume stats: pvcRef %+v, capacity %v: want default/data and the file system's capacity", r, vol.CapacityBytes)
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "holder", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if p := run("reader", false, `test "$(cat /data/f)" = persisted`); p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("reader did not find the data: %s %+v", p.Status.Phase, p.Status.ContainerStatuses)
	}
	if p := run("readonly", true, `cat /data/f && ! touch /data/g`); p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("read-only claim mount: %s %+v", p.Status.Phase, p.Status.ContainerStatuses)
	}
	for _, name := range []string{"reader", "readonly"} {
		cs.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{})
	}

	start = time.Now()
	if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	until(t, 60*time.Second, "volume deleted", func() bool {
		_, err := cs.CoreV1().PersistentVolumes().Get(ctx, c.Spec.VolumeName, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	t.Logf("claim deleted → volume and data gone in %v", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("volume directory %s still there: %v", dir, err)
	}
}
