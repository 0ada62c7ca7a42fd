package walkthrough

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestServiceWalkthrough is issue 6's walkthrough on one node: an nginx
// Deployment with three replicas behind a LoadBalancer Service answers by
// name from another pod (cluster DNS through the kube-dns ClusterIP), at
// its ClusterIP from the node, at its NodePort and at its ServiceLB address;
// requests spread over the replicas; a deleted replica leaves rotation and a
// new one joins it within a second of becoming Ready.
func TestServiceWalkthrough(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 100+(n+salt+1)%100))
	cs := srv.Client()
	ctx := framework.Context(t, 10*time.Minute)
	table := fmt.Sprintf("sknpx%d", n%100000)
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", table).Run() })
	a := framework.StartAgent(t, srv, "walk-svc", fmt.Sprintf("skn%d", (n+1)%100000), "--proxy-table", table)
	for _, tarball := range []string{framework.NginxTarball(t), framework.BusyboxTarball(t)} {
		if out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, tarball).CombinedOutput(); err != nil {
			t.Fatalf("skiff image import %s: %v: %s", tarball, err, out)
		}
	}
	k := srv.NewKubectl(t, framework.DefaultKubectl)
	k.MustRun("apply", "-f", filepath.Join("testdata", "nginx-service.yaml"))
	k.MustRun("wait", "--for=condition=Available", "deployment/nginx", "--timeout=180s")
	if _, err := cs.CoreV1().Pods("default").Create(ctx, framework.BusyboxPod("client", "sleep", "3600"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, cs, "client", 90*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	var svc *corev1.Service
	eventually(t, 30*time.Second, "the Service's LoadBalancer address", func() (bool, string) {
		var err error
		svc, err = cs.CoreV1().Services("default").Get(ctx, "nginx", metav1.GetOptions{})
		return err == nil && len(svc.Status.LoadBalancer.Ingress) > 0, fmt.Sprint(err)
	})
	nd, err := cs.CoreV1().Nodes().Get(ctx, "walk-svc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var nodeIP string
	for _, ad := range nd.Status.Addresses {
		if ad.Type == corev1.NodeInternalIP {
			nodeIP = ad.Address
		}
	}
	replicas := func() map[string]bool {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=nginx"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				out[p.Name] = true
			}
		}
		return out
	}

	t.Run("ByNameFromAPod", func(t *testing.T) {
		var out string
		eventually(t, 30*time.Second, "wget by Service name from a pod", func() (bool, string) {
			r := k.Run("exec", "client", "--", "wget", "-qO-", "http://nginx.default.svc.cluster.local/who")
			out = strings.TrimSpace(r.Stdout)
			return r.Err == nil && replicas()[out], out + r.Stderr
		})
		r := k.Run("exec", "client", "--", "wget", "-qO-", "http://nginx.default.svc.cluster.local")
		if r.Err != nil || !strings.HasPrefix(r.Stdout, framework.NginxPage) {
			t.Errorf("wget http://nginx.default.svc.cluster.local: %v %q %s", r.Err, r.Stdout, r.Stderr)
		}
	})

	addrs := map[string]string{
		"ClusterIP":    net.JoinHostPort(svc.Spec.ClusterIP, "80"),
		"NodePort":     net.JoinHostPort(nodeIP, fmt.Sprint(svc.Spec.Ports[0].NodePort)),
		"LoadBalancer": net.JoinHostPort(svc.Status.LoadBalancer.Ingress[0].IP, "80"),
	}
	for _, what := range []string{"ClusterIP", "NodePort", "LoadBalancer"} {
		t.Run(what+"SpreadsOverReplicas", func(t *testing.T) {
			want := replicas()
			seen := map[string]int{}
			for i := 0; i < 60; i++ {
				body, err := freshGet("http://" + addrs[what] + "/who")
				if err != nil {
					t.Fatalf("GET %s: %v", addrs[what], err)
				}
				seen[strings.TrimSpace(body)]++
			}
			for name := range want {
				if seen[name] == 0 {
					t.Errorf("%s %s: 60 requests never reached %s (%v)", what, addrs[what], name, seen)
				}
			}
			if len(seen) != len(want) {
				t.Errorf("%s: answered by %v, replicas %v", what, seen, want)
			}
		})
	}

	t.Run("RotationFollowsReplicas", func(t *testing.T) {
		addr := "http://" + addrs["ClusterIP"] + "/who"
		// A deleted replica leaves rotation (its endpoint stops being
		// ready as soon as it terminates).
		var gone string
		for name := range replicas() {
			gone = name
			break
		}
		if err := cs.CoreV1().Pods("default").Delete(ctx, gone, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, gone+" out of rotation", func() (bool, string) {
			for i := 0; i < 30; i++ {
				if body, _ := freshGet(addr); strings.TrimSpace(body) == gone {
					return false, "still served by " + gone
				}
			}
			return true, ""
		})
		// Scale up: the new replica answers within a second of Ready.
		before := replicas()
		w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=nginx",
			FieldSelector: fields.Everything().String()})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		k.MustRun("scale", "deployment/nginx", "--replicas=5")
		newName, readyAt := waitNewReady(ctx, t, w, before)
		var joined time.Duration
		eventually(t, 10*time.Second, newName+" in rotation", func() (bool, string) {
			for i := 0; i < 20; i++ {
				if body, _ := freshGet(addr); strings.TrimSpace(body) == newName {
					joined = time.Since(readyAt)
					return true, ""
				}
			}
			return false, "not yet served by " + newName
		})
		t.Logf("new replica %s served %v after it became Ready", newName, joined.Round(time.Millisecond))
		if joined > 1500*time.Millisecond {
			t.Errorf("new replica joined rotation %v after Ready, want ≤ 1 s (+ slack)", joined)
		}
	})
}

// waitNewReady returns the first pod not in before that turns Ready, and
// when the watch saw it so.
func waitNewReady(ctx context.Context, t *testing.T, w watch.Interface, before map[string]bool) (string, time.Time) {
	t.Helper()
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("pod watch closed")
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if isPod && !before[p.Name] && p.DeletionTimestamp == nil && framework.PodReady(p) {
				return p.Name, time.Now()
			}
		case <-timeout:
			t.Fatal("no new replica Ready within 3m")
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
	}
	t.Fatalf("%s: not within %v: %s", what, d, last)
}

// freshGet is one GET on a connection of its own (the proxy balances
// connections, not requests).
func freshGet(url string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}
