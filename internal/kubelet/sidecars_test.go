package kubelet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPodStatusFeatures(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	withSidecar := func(policy corev1.RestartPolicy) *corev1.Pod {
		p := makePod(policy, "main")
		p.Spec.InitContainers = []corev1.Container{{Name: "side", RestartPolicy: &always}, {Name: "init"}}
		return p
	}
	oom := exited("main", 0, 137)
	oom.Reason = "OOMKilled"
	for _, tc := range []struct {
		name  string
		pod   *corev1.Pod
		st    *podState
		work  podWork
		check func(t *testing.T, s corev1.PodStatus)
	}{
		{"deadline exceeded", makePod(corev1.RestartPolicyAlways, "main"), state(exited("main", 0, 137)),
			podWork{initDone: true, deadlineExceeded: true}, func(t *testing.T, s corev1.PodStatus) {
				if s.Phase != corev1.PodFailed || s.Reason != "DeadlineExceeded" ||
					s.Message != "Pod was active on the node longer than the specified deadline" {
					t.Errorf("phase %s reason %q message %q", s.Phase, s.Reason, s.Message)
				}
			}},
		{"OOMKilled", makePod(corev1.RestartPolicyNever, "main"), state(oom), podWork{initDone: true},
			func(t *testing.T, s corev1.PodStatus) {
				if term := s.ContainerStatuses[0].State.Terminated; s.Phase != corev1.PodFailed || term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
					t.Errorf("phase %s, state %+v", s.Phase, s.ContainerStatuses[0].State)
				}
			}},
		{"sidecar running beside the container: ready, pod ready", withSidecar(corev1.RestartPolicyAlways),
			state(running("side", 0), exited("init", 0, 0), running("main", 0)), podWork{initDone: true},
			func(t *testing.T, s corev1.PodStatus) {
				side := s.InitContainerStatuses[0]
				if side.State.Running == nil || !side.Ready || side.Started == nil || !*side.Started {
					t.Errorf("sidecar %+v", side)
				}
				if s.Phase != corev1.PodRunning || condition(s, corev1.PodReady) != corev1.ConditionTrue {
					t.Errorf("phase %s, conditions %+v", s.Phase, s.Conditions)
				}
			}},
		{"sidecar restarting: pod not ready", withSidecar(corev1.RestartPolicyAlways),
			state(exited("side", 0, 1), exited("init", 0, 0), running("main", 0)), podWork{initDone: true},
			func(t *testing.T, s corev1.PodStatus) {
				if s.Phase != corev1.PodRunning || condition(s, corev1.PodReady) != corev1.ConditionFalse {
					t.Errorf("phase %s, conditions %+v", s.Phase, s.Conditions)
				}
			}},
		{"container done, sidecar running: the pod succeeded", withSidecar(corev1.RestartPolicyNever),
			state(running("side", 0), exited("init", 0, 0), exited("main", 0, 0)), podWork{initDone: true},
			func(t *testing.T, s corev1.PodStatus) {
				if s.Phase != corev1.PodSucceeded {
					t.Errorf("phase %s", s.Phase)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testKubelet()
			if tc.work.waiting == nil {
				tc.work.waiting = map[string]*corev1.ContainerStateWaiting{}
			}
			s, err := k.podStatus(context.Background(), tc.pod, tc.st, nil, &tc.work)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestInitialized(t *testing.T) {
	p := makePod(corev1.RestartPolicyAlways, "main")
	if initialized(p, state(running("init", 0))) {
		t.Error("initialized before any container ran")
	}
	if !initialized(p, state(exited("main", 0, 1))) {
		t.Error("not initialized after a container ran")
	}
}

func TestDeadlineLeft(t *testing.T) {
	k := testKubelet()
	p := makePod(corev1.RestartPolicyAlways, "main")
	if _, ok := k.deadlineLeft(p); ok {
		t.Error("deadline without activeDeadlineSeconds")
	}
	p.Spec.ActiveDeadlineSeconds = ptrTo(int64(30))
	if _, ok := k.deadlineLeft(p); ok {
		t.Error("deadline before the pod started")
	}
	start := metav1.NewTime(t0.Add(-10 * time.Second))
	p.Status.StartTime = &start
	if left, ok := k.deadlineLeft(p); !ok || left != 20*time.Second {
		t.Errorf("left %s, %v; want 20s", left, ok)
	}
}

func TestHookHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		if r.Header.Get("X-Hook") != "yes" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	k := testKubelet()
	p := makePod(corev1.RestartPolicyAlways, "main")
	c := &p.Spec.Containers[0]
	h := func(path string) *corev1.LifecycleHandler {
		return &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt(port),
			HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Hook", Value: "yes"}}}}
	}
	if msg, err := k.runHook(context.Background(), p, c, "id", "127.0.0.1", h("/ok"), time.Second); err != nil {
		t.Errorf("ok hook: %v (%s)", err, msg)
	}
	msg, err := k.runHook(context.Background(), p, c, "id", "127.0.0.1", h("/bad"), time.Second)
	if err == nil || !strings.HasPrefix(msg, `HTTP lifecycle hook (/bad) for Container "main" in Pod "p_default(u1)" failed - error: `) {
		t.Errorf("bad hook: %v, message %q", err, msg)
	}
	start := time.Now()
	if _, err := k.runHook(context.Background(), p, c, "id", "", &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}, time.Second); err != nil || time.Since(start) < time.Second {
		t.Errorf("sleep hook: %v after %s", err, time.Since(start))
	}
}
