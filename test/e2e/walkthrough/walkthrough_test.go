package walkthrough

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// salt keeps this package's pod CIDR apart from other suites' run at the
// same time (they derive theirs from their own pid the same way).
const salt = 71

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: time.Minute}
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

func TestWalkthrough(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 100+(n+salt)%100))
	cs := srv.Client()
	ctx := framework.Context(t, 10*time.Minute)
	const node = "walk-e2e"
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("skn%d", n%100000))
	for _, tarball := range []string{framework.NginxTarball(t), framework.BusyboxTarball(t)} {
		out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, tarball).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "imported ") {
			t.Fatalf("skiff image import %s: %v: %s", tarball, err, out)
		}
	}
	k := srv.NewKubectl(t, "1.33")

	begin := time.Now()
	if out := k.MustRun("apply", "-f", filepath.Join("testdata", "nginx-pod.yaml")); !strings.Contains(out, "pod/nginx created") {
		t.Fatalf("kubectl apply: %q", out)
	}
	pod := framework.WaitPod(t, cs, "nginx", 3*time.Minute, "ready", framework.PodReady)
	t.Logf("nginx ready %v after kubectl apply", time.Since(begin).Round(time.Millisecond))
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
		t.Fatalf("nginx: phase %s, IP %q", pod.Status.Phase, pod.Status.PodIP)
	}
	podURL := "http://" + pod.Status.PodIP + "/"

	t.Run("HTTPFromHost", func(t *testing.T) {
		var body string
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if body, err = httpGet(podURL); err == nil {
				break
			}
		}
		if err != nil || !strings.HasPrefix(body, framework.NginxPage) {
			t.Fatalf("GET %s: %v: %q", podURL, err, body)
		}
	})

	t.Run("Logs", func(t *testing.T) {
		k := k.With(t)
		var got string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got = k.MustRun("logs", "nginx"); strings.Contains(got, `"GET / HTTP/1.1" 200`) {
				return
			}
		}
		t.Errorf("kubectl logs nginx has no access log line: %q", got)
	})

	t.Run("Exec", func(t *testing.T) {
		got := k.With(t).MustRun("exec", "nginx", "--", "cat", "/etc/nginx/nginx.conf")
		if !strings.Contains(got, "worker_processes") || !strings.Contains(got, "/var/log/nginx/access.log") {
			t.Errorf("kubectl exec nginx -- cat /etc/nginx/nginx.conf = %q", got)
		}
	})

	// kubectl 1.31+ forwards over WebSocket (SPDY tunnelled, KEP-4006);
	// 1.27 speaks SPDY only.
	for _, v := range []struct{ version, proto string }{{"1.33", "WebSocket"}, {"1.27", "SPDY"}} {
		t.Run("PortForward"+v.proto, func(t *testing.T) {
			k := srv.NewKubectl(t, v.version)
			k.Env = []string{"KUBECTL_PORT_FORWARD_WEBSOCKETS=true"}
			port := framework.FreePort(t)
			bg := k.Start("port-forward", "-v=4", "pod/nginx", fmt.Sprintf("%d:80", port))
			if !bg.WaitOutput("Forwarding from 127.0.0.1:"+strconv.Itoa(port), time.Minute) {
				out, errs := bg.Output()
				t.Fatalf("kubectl.%s port-forward did not start: %q %s", v.version, out, errs)
			}
			var lat []time.Duration
			for i := 0; i < 20; i++ { // one connection each, through the same session
				start := time.Now()
				body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port))
				if err != nil || !strings.HasPrefix(body, framework.NginxPage) {
					_, errs := bg.Output()
					t.Fatalf("GET through kubectl.%s port-forward: %v: %q\n%s", v.version, err, body, errs)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			start := time.Now()
			big, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/%s", port, framework.NginxBigFile))
			took := time.Since(start)
			if err != nil || len(big) != framework.NginxBigSize {
				t.Fatalf("GET /%s through kubectl.%s port-forward: %v, %d bytes", framework.NginxBigFile, v.version, err, len(big))
			}
			t.Logf("kubectl.%s port-forward (%s): GET / median %v (max %v) over 20 connections; %d MiB in %v (%.0f MiB/s)",
				v.version, v.proto, lat[10].Round(time.Microsecond), lat[19].Round(time.Microsecond), framework.NginxBigSize>>20,
				took.Round(time.Millisecond), float64(framework.NginxBigSize>>20)/took.Seconds())
			if !bg.WaitOutput("Handling connection for", 5*time.Second) {
				t.Errorf("kubectl.%s port-forward handled no connection", v.version)
			}
			bg.Stop() // klog flushes on exit
			_, errs := bg.Output()
			if strings.Contains(errs, "fallback to secondary dialer") {
				t.Errorf("kubectl.%s fell back from WebSocket: %s", v.version, errs)
			}
			// The tunnelling dialer logs its negotiated protocol at -v=4.
			if ws := strings.Contains(errs, "negotiated protocol: portforward.k8s.io"); ws != (v.proto == "WebSocket") {
				t.Errorf("kubectl.%s: WebSocket tunnel used = %v, want %v; stderr:\n%s", v.version, ws, v.proto == "WebSocket", errs)
			}
		})
	}

	// A port nothing listens on: the connection fails and kubectl reports
	// the runtime's error.
	t.Run("PortForwardClosedPort", func(t *testing.T) {
		k := k.With(t)
		port := framework.FreePort(t)
		bg := k.Start("port-forward", "pod/nginx", fmt.Sprintf("%d:81", port))
		if !bg.WaitOutput("Forwarding from 127.0.0.1:"+strconv.Itoa(port), time.Minute) {
			t.Fatal("kubectl port-forward did not start")
		}
		if body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
			t.Errorf("GET through a forward to a closed port: %q", body)
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, errs := bg.Output(); strings.Contains(errs, "connection refused") {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, errs := bg.Output()
		t.Errorf("kubectl port-forward to a closed port: stderr %q, want the runtime's connection refused", errs)
	})

	t.Run("Attach", func(t *testing.T) {
		// nginx's stdout is its access log: attach, make a request, see it.
		bg := k.With(t).Start("attach", "nginx")
		time.Sleep(2 * time.Second) // let the attach session open
		marker := fmt.Sprintf("/attach-%d", time.Now().UnixNano())
		found := false
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !found; {
			httpGet("http://" + pod.Status.PodIP + marker)
			found = bg.WaitOutput("GET "+marker, 2*time.Second)
		}
		if !found {
			out, errs := bg.Output()
			t.Errorf("kubectl attach nginx did not show the access of %s: %q %s", marker, out, errs)
		}
	})

	// kubectl run -i --rm attaches to the new pod's stdin (WebSocket by
	// default since kubectl 1.30; SPDY when turned off).
	for _, proto := range []struct{ name, env string }{{"WebSocket", "true"}, {"SPDY", "false"}} {
		t.Run("RunInteractiveRm"+proto.name, func(t *testing.T) {
			k := k.With(t)
			k.Env = []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + proto.env}
			k.Stdin = "echo hello from $(hostname)\nexit 0\n"
			name := "shell-" + strings.ToLower(proto.name)
			r := k.Run("run", name, "-i", "--rm", "--restart=Never", "--image="+framework.BusyboxImage,
				"--image-pull-policy=Never", "--", "sh")
			if r.Err != nil || !strings.Contains(r.Stdout, "hello from "+name) {
				t.Fatalf("kubectl run -i --rm: %v: %q %s", r.Err, r.Stdout, r.Stderr)
			}
			if !strings.Contains(r.Stdout, `pod "`+name+`" deleted`) {
				t.Errorf("kubectl run --rm did not delete the pod: %q", r.Stdout)
			}
		})
	}

	// kubectl attach -it to a shell that runs on a terminal, with kubectl
	// on a terminal too.
	t.Run("AttachTTY", func(t *testing.T) {
		p := framework.BusyboxPod("tty", "sh")
		p.Spec.Containers[0].Stdin, p.Spec.Containers[0].TTY = true, true
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		framework.WaitPod(t, cs, "tty", time.Minute, "ready", framework.PodReady)
		bg := k.With(t).StartTTY("attach", "-it", "tty")
		if !bg.WaitOutput("If you don't see a command prompt", 30*time.Second) {
			out, _ := bg.Output()
			t.Fatalf("kubectl attach -it did not attach: %q", out)
		}
		io.WriteString(bg.Stdin(), "echo tty-$((40+2)) $(tty)\r")
		if !bg.WaitOutput("tty-42 /dev/pts/", 20*time.Second) {
			out, _ := bg.Output()
			t.Fatalf("no answer from the shell through kubectl attach -it: %q", out)
		}
		io.WriteString(bg.Stdin(), "exit\r")
		select {
		case <-bg.Done():
		case <-time.After(30 * time.Second):
			t.Errorf("kubectl attach -it did not end when the shell exited")
		}
		framework.WaitPod(t, cs, "tty", time.Minute, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	})

	t.Run("BadInput", func(t *testing.T) {
		hc, err := rest.HTTPClientFor(srv.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			pod, sub, query string
			code            int
			msg             string
		}{
			{"nginx", "portforward", "ports=http", http.StatusBadRequest, `invalid port "http"`},
			{"nginx", "portforward", "ports=70000", http.StatusBadRequest, `invalid port "70000"`},
			{"nginx", "attach", "", http.StatusBadRequest, "you must specify at least one of stdin, stdout, stderr"},
			{"nginx", "attach", "stdout=true&container=nope", http.StatusBadRequest, "container nope is not valid for pod nginx"},
			{"nope", "portforward", "", http.StatusNotFound, `pods "nope" not found`},
			{"nope", "attach", "stdout=true", http.StatusNotFound, `pods "nope" not found`},
		} {
			u := srv.URL() + "/api/v1/namespaces/default/pods/" + tc.pod + "/" + tc.sub + "?" + tc.query
			resp, err := hc.Post(u, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			var st metav1.Status
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if resp.StatusCode != tc.code || err != nil || int(st.Code) != tc.code || !strings.Contains(st.Message, tc.msg) {
				t.Errorf("POST %s: %d %+v (%v), want %d %q", u, resp.StatusCode, st, err, tc.code, tc.msg)
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		rt, err := cri.Dial(containerd.Socket(a.DataDir), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		uid := string(pod.UID)
		sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}})
		if err != nil || len(sbs) != 1 {
			t.Fatalf("sandboxes of nginx before delete: %v %v", sbs, err)
		}
		sandboxID := sbs[0].Id
		ipFiles, _ := filepath.Glob(filepath.Join(a.DataDir, "*", "cni", "ipam", "*", pod.Status.PodIP))
		if len(ipFiles) != 1 {
			t.Errorf("host-local lease files of %s before delete: %v", pod.Status.PodIP, ipFiles)
		}
		if m := mountsOf(t, uid, sandboxID); len(m) == 0 {
			t.Errorf("no mount of the pod (uid %s, sandbox %s) before delete", uid, sandboxID)
		}

		grace := int64(30)
		if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		begin := time.Now()
		k.With(t).MustRun("delete", "pod", "nginx")
		took := time.Since(begin)
		t.Logf("kubectl delete pod nginx took %v (grace %ds)", took.Round(time.Millisecond), grace)
		if took > time.Duration(grace)*time.Second {
			t.Errorf("delete took %v, longer than the grace period %ds", took, grace)
		}
		if _, err := cs.CoreV1().Pods("default").Get(ctx, "nginx", metav1.GetOptions{}); err == nil {
			t.Errorf("pod nginx still exists after kubectl delete")
		}
		// The kubelet removes the sandbox after the API object is gone.
		var left []string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			left = leftovers(ctx, t, rt, uid, sandboxID, a.DataDir, pod.Status.PodIP)
			if len(left) == 0 {
				break
			}
		}
		if len(left) > 0 {
			t.Errorf("after delete: %s", strings.Join(left, "; "))
		}
	})
}

// leftovers lists what the pod left on the node: containers, sandboxes,
// mounts and host-local leases.
func leftovers(ctx context.Context, t *testing.T, rt *cri.Client, uid, sandboxID, dataDir, ip string) []string {
	var left []string
	cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}})
	if err != nil {
		return []string{err.Error()}
	}
	for _, c := range cs {
		left = append(left, "container "+c.Id)
	}
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}})
	if err != nil {
		return []string{err.Error()}
	}
	for _, sb := range sbs {
		left = append(left, "sandbox "+sb.Id)
	}
	for _, m := range mountsOf(t, uid, sandboxID) {
		left = append(left, "mount "+m)
	}
	files, _ := filepath.Glob(filepath.Join(dataDir, "*", "cni", "ipam", "*", ip))
	for _, f := range files {
		left = append(left, "lease "+f)
	}
	return left
}

// mountsOf lists the mount points in /proc/mounts that belong to the pod.
func mountsOf(t *testing.T, uid, sandboxID string) []string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (strings.Contains(f[1], uid) || strings.Contains(f[1], sandboxID)) {
			out = append(out, f[1])
		}
	}
	return out
}
