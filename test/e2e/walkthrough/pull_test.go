package walkthrough

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func waitingReason(p *corev1.Pod) (string, string) {
	if len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil {
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w.Reason, w.Message
	}
	return "", ""
}

func podEvents(t *testing.T, cs kubernetes.Interface, pod string) string {
	t.Helper()
	evs, err := cs.CoreV1().Events("default").List(framework.Context(t, time.Minute), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == pod && e.Source.Component == "kubelet" {
			fmt.Fprintf(&b, "%s %s %s\n", e.Type, e.Reason, e.Message)
		}
	}
	return b.String()
}

// TestImagePull pulls from a registry the test runs on 127.0.0.1 with basic
// auth: with the pod's pull secret it works; without, or for an unknown
// image, the pod waits in ErrImagePull then ImagePullBackOff with the
// registry's message, and other pods are not held up.
func TestImagePull(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 100+(n+salt+1)%100))
	cs := srv.Client()
	ctx := framework.Context(t, 10*time.Minute)
	const node = "pull-e2e"
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("sknp%d", n%100000))
	reg := framework.StartRegistry(t, framework.BusyboxTarball(t), "test/busybox", "1", "alice", "s3cret")

	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + reg.Host + `":{"auth":"` + auth + `"}}}`)}}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Every waiting state the pods pass through, from a watch: ErrImagePull
	// lasts only until the kubelet's next sync, too short to poll for.
	seen := newWaitingLog(t, cs)
	pod := func(name, image string, policy corev1.PullPolicy, secrets ...string) {
		t.Helper()
		p := framework.BusyboxPod(name, "sleep", "3600")
		p.Spec.Containers[0].Image, p.Spec.Containers[0].ImagePullPolicy = image, policy
		for _, s := range secrets {
			p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Failing pulls first: they must not hold up the good one.
	pod("unknown", reg.Host+"/test/nope:1", corev1.PullIfNotPresent, "regcred")
	pod("noauth", reg.Ref(), corev1.PullAlways)
	begin := time.Now()
	pod("pulled", reg.Ref(), corev1.PullIfNotPresent, "regcred")
	framework.WaitPod(t, cs, "pulled", 3*time.Minute, "ready", framework.PodReady)
	t.Logf("pod with a pulled image ready %v after create", time.Since(begin).Round(time.Millisecond))
	ev := podEvents(t, cs, "pulled")
	for _, want := range []string{`Normal Pulling Pulling image "` + reg.Ref() + `"`, `Normal Pulled Successfully pulled image "` + reg.Ref() + `" in`} {
		if !strings.Contains(ev, want) {
			t.Errorf("events of pulled lack %q:\n%s", want, ev)
		}
	}

	// A name that resolves nowhere, mirrored to the test's registry through
	// the agent's containerd hosts directory (read at every pull).
	hostDir := filepath.Join(containerd.RegistryDir(a.DataDir), "registry.skiff.test")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := fmt.Sprintf("server = \"https://registry.skiff.test\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", reg.Host)
	if err := os.WriteFile(filepath.Join(hostDir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	mirrored := "registry.skiff.test/test/busybox:1"
	authM := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	secretM := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mirrorcred"}, Type: corev1.SecretTypeDockercfg,
		Data: map[string][]byte{corev1.DockerConfigKey: []byte(`{"registry.skiff.test":{"auth":"` + authM + `"}}`)}}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, secretM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod("mirrored", mirrored, corev1.PullAlways, "mirrorcred")
	framework.WaitPod(t, cs, "mirrored", 2*time.Minute, "ready", framework.PodReady)

	for _, tc := range []struct{ pod, msg string }{{"unknown", "not found"}, {"noauth", "401 Unauthorized"}} {
		msg := seen.wait(t, tc.pod, "ErrImagePull", time.Minute)
		if !strings.HasPrefix(msg, "Failed to pull image") || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: ErrImagePull message %q, want the registry's %q", tc.pod, msg, tc.msg)
		}
		t.Logf("%s: %s", tc.pod, msg)
		if msg := seen.wait(t, tc.pod, "ImagePullBackOff", time.Minute); !strings.HasPrefix(msg, "Back-off pulling image") || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: ImagePullBackOff message %q", tc.pod, msg)
		}
		ev := podEvents(t, cs, tc.pod)
		for _, want := range []string{"Normal Pulling", "Warning Failed Failed to pull image", "Warning Failed Error: ErrImagePull", "Normal BackOff Back-off pulling image"} {
			if !strings.Contains(ev, want) {
				t.Errorf("events of %s lack %q:\n%s", tc.pod, want, ev)
			}
		}
	}
	// Pull attempts for the unknown image (a burst of requests each) are
	// spaced by the back-off: 10 s, then 20 s.
	p, _ := cs.CoreV1().Pods("default").Get(ctx, "unknown", metav1.GetOptions{})
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("unknown: phase %s, want Pending", p.Status.Phase)
	}
	attempts := func() []time.Time {
		var at []time.Time
		for _, r := range reg.Requests() {
			if !strings.Contains(r.Path, "/test/nope/manifests/") {
				continue
			}
			if len(at) == 0 || r.At.Sub(at[len(at)-1]) > 2*time.Second {
				at = append(at, r.At)
			}
		}
		return at
	}
	deadline := time.Now().Add(45 * time.Second)
	for len(attempts()) < 3 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	at := attempts()
	if len(at) < 3 {
		t.Fatalf("%d pull attempts of the unknown image in 45 s, want 3", len(at))
	}
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second} {
		if gap := at[i+1].Sub(at[i]); gap < want-time.Second || gap > want+10*time.Second {
			t.Errorf("gap before pull attempt %d: %v, want about %v", i+2, gap.Round(time.Millisecond), want)
		}
	}
	t.Logf("pull attempts of the unknown image at +0, +%v, +%v", at[1].Sub(at[0]).Round(time.Millisecond), at[2].Sub(at[0]).Round(time.Millisecond))
}

// waitingLog records every waiting reason and message of the pods in
// default as a watch reports them.
type waitingLog struct {
	mu   sync.Mutex
	seen map[string]map[string]string // pod → reason → last message
}

func newWaitingLog(t *testing.T, cs kubernetes.Interface) *waitingLog {
	t.Helper()
	ctx := framework.Context(t, 10*time.Minute)
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	l := &waitingLog{seen: map[string]map[string]string{}}
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if r, m := waitingReason(p); r != "" {
				l.mu.Lock()
				if l.seen[p.Name] == nil {
					l.seen[p.Name] = map[string]string{}
				}
				l.seen[p.Name][r] = m
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// wait returns the message of the pod's waiting reason once seen.
func (l *waitingLog) wait(t *testing.T, pod, reason string, timeout time.Duration) string {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		l.mu.Lock()
		m, ok := l.seen[pod][reason]
		l.mu.Unlock()
		if ok {
			return m
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Fatalf("pod %s never waited with reason %s within %v; seen %v", pod, reason, timeout, l.seen[pod])
	return ""
}
