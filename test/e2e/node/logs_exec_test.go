package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestLogsExec runs real kubectl logs and exec through the API server to
// the kubelet API of a `skiff agent`.
func TestLogsExec(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 100+(n+50)%100))
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	const node = "logs-exec-e2e"
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("skl%d", n%100000))
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := nd.Status.DaemonEndpoints.KubeletEndpoint.Port; p == 0 || p == 10250 {
		t.Errorf("kubelet endpoint port %d, want the test's free port", p)
	}

	// logger prints two lines, a third once /tmp/more exists, then exits.
	logger := framework.BusyboxPod("logger", "sh", "-c",
		"echo first; echo second; while [ ! -f /tmp/more ]; do sleep 0.1; done; echo third; sleep 0.5")
	logger.Spec.RestartPolicy = corev1.RestartPolicyNever
	shell := framework.BusyboxPod("shell", "sleep", "3600")
	for _, p := range []*corev1.Pod{logger, shell} {
		p.Spec.NodeName = node
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	framework.WaitPod(t, cs, "logger", 2*time.Minute, "ready", framework.PodReady)
	framework.WaitPod(t, cs, "shell", 2*time.Minute, "ready", framework.PodReady)
	k := srv.NewKubectl(t, framework.DefaultKubectl)

	t.Run("Logs", func(t *testing.T) {
		k := k.With(t)
		deadline := time.Now().Add(10 * time.Second)
		var got string
		for got != "first\nsecond\n" && time.Now().Before(deadline) {
			got = k.MustRun("logs", "logger")
			time.Sleep(100 * time.Millisecond)
		}
		if got != "first\nsecond\n" {
			t.Errorf("kubectl logs = %q", got)
		}
		if got := k.MustRun("logs", "--tail=1", "logger"); got != "second\n" {
			t.Errorf("kubectl logs --tail=1 = %q", got)
		}
		got = k.MustRun("logs", "--timestamps", "--tail=1", "logger")
		if ts, msg, _ := strings.Cut(got, " "); msg != "second\n" {
			t.Errorf("kubectl logs --timestamps = %q", got)
		} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("kubectl logs --timestamps: %v", err)
		}
		if got := k.MustRun("logs", "--limit-bytes=3", "logger"); got != "fir" {
			t.Errorf("kubectl logs --limit-bytes=3 = %q", got)
		}
	})

	t.Run("LogsFollow", func(t *testing.T) {
		k := k.With(t)
		done := make(chan framework.Result, 1)
		go func() { done <- k.Run("logs", "-f", "logger") }()
		time.Sleep(time.Second)
		select {
		case r := <-done:
			t.Fatalf("kubectl logs -f ended before the container: %+v", r)
		default:
		}
		k.MustRun("exec", "logger", "--", "touch", "/tmp/more")
		select {
		case r := <-done:
			if r.Err != nil || r.Stdout != "first\nsecond\nthird\n" {
				t.Errorf("kubectl logs -f: %v: %q %s", r.Err, r.Stdout, r.Stderr)
			}
		case <-time.After(time.Minute):
			t.Fatal("kubectl logs -f did not end when the container exited")
		}
	})

	for _, proto := range []struct{ name, env string }{{"WebSocket", "true"}, {"SPDY", "false"}} {
		t.Run("Exec"+proto.name, func(t *testing.T) {
			k := k.With(t)
			k.Env = []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + proto.env}
			if got := k.MustRun("exec", "shell", "--", "cat", "/etc/hostname"); got != "shell\n" {
				t.Errorf("kubectl exec cat /etc/hostname = %q", got)
			}
			k.Stdin = "hello from stdin\nline two\n"
			got := k.MustRun("exec", "-i", "shell", "--", "cat")
			k.Stdin = ""
			if got != "hello from stdin\nline two\n" {
				t.Errorf("kubectl exec -i cat = %q", got)
			}
			r := k.Run("exec", "shell", "--", "sh", "-c", "echo oops >&2; exit 3")
			var ee *exec.ExitError
			if !asExit(r.Err, &ee) || ee.ExitCode() != 3 || !strings.Contains(r.Stderr, "oops") {
				t.Errorf("kubectl exec exit 3: %v, stderr %q", r.Err, r.Stderr)
			}
		})
	}

	t.Run("ExecTTY", func(t *testing.T) {
		// script(1) gives kubectl a terminal, so -t allocates one in the
		// container (resize messages flow on channel 4).
		kubectl := filepath.Join(framework.KubectlDir, "kubectl."+framework.DefaultKubectl)
		cmd := exec.Command("script", "-qec", kubectl+" exec -it shell -- tty", "/dev/null")
		cmd.Env = []string{"HOME=" + t.TempDir(), "KUBECONFIG=" + srv.Kubeconfig, "PATH=" + os.Getenv("PATH")}
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		t.Logf("kubectl exec -it: %q", out)
		if err != nil || !strings.Contains(string(out), "/dev/pts/") {
			t.Errorf("kubectl exec -it tty: %v: %q", err, out)
		}
	})

	t.Run("Copy", func(t *testing.T) {
		k := k.With(t)
		src := filepath.Join(t.TempDir(), "in.txt")
		if err := os.WriteFile(src, []byte("copied through exec\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		k.MustRun("cp", src, "shell:/tmp/in.txt")
		if got := k.MustRun("exec", "shell", "--", "cat", "/tmp/in.txt"); got != "copied through exec\n" {
			t.Errorf("after kubectl cp into the pod: %q", got)
		}
		dst := filepath.Join(t.TempDir(), "out.txt")
		k.MustRun("cp", "shell:/tmp/in.txt", dst)
		if b, err := os.ReadFile(dst); err != nil || string(b) != "copied through exec\n" {
			t.Errorf("kubectl cp from the pod: %q, %v", b, err)
		}
	})

	t.Run("ExecErrors", func(t *testing.T) {
		k := k.With(t)
		r := k.Run("exec", "shell", "-c", "nope", "--", "true")
		if r.Err == nil || !strings.Contains(r.Stderr, "container nope is not valid for pod shell") {
			t.Errorf("exec unknown container: %v: %s", r.Err, r.Stderr)
		}
		r = k.Run("logs", "shell", "-c", "nope")
		if r.Err == nil || !strings.Contains(r.Stderr, "container nope is not valid for pod shell") {
			t.Errorf("logs unknown container: %v: %s", r.Err, r.Stderr)
		}
		pending := framework.BusyboxPod("pending", "true")
		pending.Spec.SchedulerName = "no-such-scheduler"
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pending, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		r = k.Run("exec", "pending", "--", "true")
		if r.Err == nil || !strings.Contains(r.Stderr, "pod pending does not have a host assigned") {
			t.Errorf("exec in an unscheduled pod: %v: %s", r.Err, r.Stderr)
		}
		r = k.Run("logs", "--previous", "shell")
		if r.Err == nil || !strings.Contains(r.Stderr, `Error from server (BadRequest): previous terminated container "main" in pod "shell" not found`) {
			t.Errorf("logs --previous without a previous run: %v: %s", r.Err, r.Stderr)
		}
		r = k.Run("logs", "missing-pod")
		if r.Err == nil || !strings.Contains(r.Stderr, `pods "missing-pod" not found`) {
			t.Errorf("logs missing pod: %v: %s", r.Err, r.Stderr)
		}
	})
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*target = e
	return ok
}
