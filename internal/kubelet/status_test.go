package kubelet

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var t0 = time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)

func testKubelet() *Kubelet {
	cfg := Config{NodeName: "n1", DataDir: "/var/lib/skiff", RuntimeEndpoint: "/run/c.sock", CNIConfDir: "/etc/cni"}
	cfg.setDefaults()
	return &Kubelet{cfg: cfg, runtimeVersion: "containerd://1.6.20", nodeIP: "10.0.0.1", now: func() time.Time { return t0 }}
}

func makePod(policy corev1.RestartPolicy, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u1"},
		Spec: corev1.PodSpec{RestartPolicy: policy, NodeName: "n1"}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
	}
	return p
}

func running(name string, attempt uint32) *runtimeapi.ContainerStatus {
	return &runtimeapi.ContainerStatus{Id: name + "-id", Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, StartedAt: t0.UnixNano(), ImageRef: "sha256:abc"}
}

func exited(name string, attempt uint32, code int32) *runtimeapi.ContainerStatus {
	return &runtimeapi.ContainerStatus{Id: name + "-id", Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: code, StartedAt: t0.UnixNano(), FinishedAt: t0.Add(time.Second).UnixNano()}
}

func state(cs ...*runtimeapi.ContainerStatus) *podState {
	st := &podState{containers: map[string][]*runtimeapi.ContainerStatus{}}
	for _, c := range cs {
		st.containers[c.Metadata.Name] = append(st.containers[c.Metadata.Name], c)
	}
	return st
}

func condition(p corev1.PodStatus, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func TestPodStatus(t *testing.T) {
	backoff := &corev1.ContainerStateWaiting{Reason: reasonCrashLoopBackOff}
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		st        *podState
		work      podWork
		phase     corev1.PodPhase
		ready     corev1.ConditionStatus
		check     func(t *testing.T, cs corev1.ContainerStatus)
		initState corev1.ConditionStatus
	}{
		{name: "running", pod: makePod(corev1.RestartPolicyAlways, "a"), st: state(running("a", 0)), work: podWork{initDone: true},
			phase: corev1.PodRunning, ready: corev1.ConditionTrue, initState: corev1.ConditionTrue,
			check: func(t *testing.T, cs corev1.ContainerStatus) {
				if cs.State.Running == nil || cs.ContainerID != "containerd://a-id" || cs.ImageID != "sha256:abc" || !cs.Ready {
					t.Errorf("status %+v", cs)
				}
			}},
		{name: "not started yet", pod: makePod(corev1.RestartPolicyAlways, "a"), st: state(), work: podWork{initDone: true},
			phase: corev1.PodPending, ready: corev1.ConditionFalse, initState: corev1.ConditionTrue,
			check: func(t *testing.T, cs corev1.ContainerStatus) {
				if cs.State.Waiting == nil || cs.State.Waiting.Reason != reasonContainerCreating {
					t.Errorf("state %+v", cs.State)
				}
			}},
		{name: "never, exit 3", pod: makePod(corev1.RestartPolicyNever, "a"), st: state(exited("a", 0, 3)), work: podWork{initDone: true},
			phase: corev1.PodFailed, ready: corev1.ConditionFalse, initState: corev1.ConditionTrue,
			check: func(t *testing.T, cs corev1.ContainerStatus) {
				if term := cs.State.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" {
					t.Errorf("state %+v", cs.State)
				}
			}},
		{name: "on failure, exit 0", pod: makePod(corev1.RestartPolicyOnFailure, "a"), st: state(exited("a", 0, 0)), work: podWork{initDone: true},
			phase: corev1.PodSucceeded, ready: corev1.ConditionFalse, initState: corev1.ConditionTrue,
			check: func(t *testing.T, cs corev1.ContainerStatus) {
				if term := cs.State.Terminated; term == nil || term.Reason != "Completed" {
					t.Errorf("state %+v", cs.State)
				}
			}},
		{name: "never, one still running", pod: makePod(corev1.RestartPolicyNever, "a", "b"), st: state(exited("a", 0, 0), running("b", 0)),
			work: podWork{initDone: true}, phase: corev1.PodRunning, ready: corev1.ConditionFalse, initState: corev1.ConditionTrue},
		{name: "always, backing off", pod: makePod(corev1.RestartPolicyAlways, "a"), st: state(exited("a", 2, 1), exited("a", 1, 1)),
			work:  podWork{initDone: true, waiting: map[string]*corev1.ContainerStateWaiting{"a": backoff}},
			phase: corev1.PodRunning, ready: corev1.ConditionFalse, initState: corev1.ConditionTrue,
			check: func(t *testing.T, cs corev1.ContainerStatus) {
				if cs.State.Waiting != backoff || cs.RestartCount != 2 || cs.LastTerminationState.Terminated == nil {
					t.Errorf("status %+v", cs)
				}
			}},
		{name: "initializing", pod: makePod(corev1.RestartPolicyAlways, "a"), st: state(), work: podWork{},
			phase: corev1.PodPending, ready: corev1.ConditionFalse, initState: corev1.ConditionFalse,
			check: func(t *testing.T, cs corev1.ContainerStatus) {
				if cs.State.Waiting == nil || cs.State.Waiting.Reason != reasonPodInitializing {
					t.Errorf("state %+v", cs.State)
				}
			}},
		{name: "init failed", pod: makePod(corev1.RestartPolicyNever, "a"), st: state(), work: podWork{initFailed: true},
			phase: corev1.PodFailed, ready: corev1.ConditionFalse, initState: corev1.ConditionFalse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testKubelet()
			if tc.work.waiting == nil {
				tc.work.waiting = map[string]*corev1.ContainerStateWaiting{}
			}
			st, err := k.podStatus(context.Background(), tc.pod, tc.st, nil, &tc.work)
			if err != nil {
				t.Fatal(err)
			}
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			if got := condition(st, corev1.PodReady); got != tc.ready {
				t.Errorf("Ready %s, want %s", got, tc.ready)
			}
			if got := condition(st, corev1.PodInitialized); got != tc.initState {
				t.Errorf("Initialized %s, want %s", got, tc.initState)
			}
			if condition(st, corev1.PodScheduled) != corev1.ConditionTrue || st.HostIP != "10.0.0.1" || st.StartTime == nil {
				t.Errorf("status %+v", st)
			}
			if tc.check != nil {
				tc.check(t, st.ContainerStatuses[0])
			}
		})
	}
}

func TestRestarts(t *testing.T) {
	for _, tc := range []struct {
		policy corev1.RestartPolicy
		code   int32
		want   bool
	}{
		{corev1.RestartPolicyAlways, 0, true}, {corev1.RestartPolicyAlways, 1, true},
		{corev1.RestartPolicyOnFailure, 0, false}, {corev1.RestartPolicyOnFailure, 1, true},
		{corev1.RestartPolicyNever, 0, false}, {corev1.RestartPolicyNever, 1, false},
	} {
		if got := restarts(tc.policy, tc.code); got != tc.want {
			t.Errorf("restarts(%s, %d) = %v, want %v", tc.policy, tc.code, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{Client: fake.NewSimpleClientset(), NodeName: "n1", DataDir: "/var/lib/skiff", RuntimeEndpoint: "/run/c.sock", CNIConfDir: "/etc/cni"}
	}
	if c := good(); c.Validate() != nil {
		t.Fatalf("good config: %v", c.Validate())
	}
	for _, tc := range []struct {
		name, want string
		edit       func(*Config)
	}{
		{"no client", "--kubeconfig", func(c *Config) { c.Client = nil }},
		{"no node name", "--node-name", func(c *Config) { c.NodeName = "" }},
		{"relative data dir", "--data-dir", func(c *Config) { c.DataDir = "data" }},
		{"bad node ip", "--node-ip", func(c *Config) { c.NodeIP = "x" }},
		{"long bridge", "bridge", func(c *Config) { c.Bridge = "a-very-long-bridge-name" }},
		{"negative lease", "lease renew", func(c *Config) { c.LeaseRenew = -1 }},
		{"handler without conf dir", "host ports", func(c *Config) { c.NoHostPortHandler = "runc-nohostport" }},
		{"conf dir without handler", "host ports", func(c *Config) { c.NoHostPortCNIConfDir = "/etc/cni-nohostport" }},
		{"forbidden node label", "node-role.kubernetes.io/master", func(c *Config) { c.NodeLabels = map[string]string{"node-role.kubernetes.io/master": ""} }},
		{"bad taint effect", "effect", func(c *Config) { c.RegisterWithTaints = []corev1.Taint{{Key: "k", Effect: "Never"}} }},
	} {
		c := good()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

func TestCNIConfig(t *testing.T) {
	k := testKubelet()
	b, err := k.cniConfig("10.42.3.0/24", true)
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Plugins []struct {
			Type, Bridge      string
			IsGateway, IPMasq bool
			IPAM              struct {
				Type   string
				Ranges [][]struct{ Subnet string }
			}
		}
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.Plugins) != 2 || conf.Plugins[1].Type != "portmap" {
		t.Fatalf("plugins %+v", conf.Plugins)
	}
	br := conf.Plugins[0]
	if br.Type != "bridge" || br.Bridge != DefaultBridge || !br.IsGateway || br.IPMasq || br.IPAM.Type != "host-local" ||
		br.IPAM.Ranges[0][0].Subnet != "10.42.3.0/24" {
		t.Errorf("bridge plugin %+v", br)
	}
}

func TestContainerConfig(t *testing.T) {
	p := makePod(corev1.RestartPolicyAlways, "a")
	c := &p.Spec.Containers[0]
	c.Command, c.Args, c.WorkingDir = []string{"sh"}, []string{"-c", "true"}, "/tmp"
	c.Args = append(c.Args, "$(A)")
	env := &envList{}
	env.set("A", "1")
	cfg := containerConfig(p, c, 2, "sha256:abc", env, nil)
	if cfg.Metadata.Attempt != 2 || cfg.Image.Image != "sha256:abc" || cfg.LogPath != "a/2.log" || cfg.WorkingDir != "/tmp" ||
		len(cfg.Envs) != 1 || cfg.Args[2] != "1" || cfg.Labels[labelPodUID] != "u1" || cfg.Labels[labelContainerName] != "a" {
		t.Errorf("config %+v", cfg)
	}
	sb := testKubelet().sandboxConfig(p, 0)
	if sb.Labels[labelPodUID] != "u1" || sb.Hostname != "p" || sb.Metadata.Uid != "u1" {
		t.Errorf("sandbox config %+v", sb)
	}
}

func TestCNIConfigWithoutPortmap(t *testing.T) {
	k := testKubelet()
	with, err := k.cniConfig("10.42.3.0/24", true)
	if err != nil {
		t.Fatal(err)
	}
	without, err := k.cniConfig("10.42.3.0/24", false)
	if err != nil {
		t.Fatal(err)
	}
	var a, b struct {
		Name    string
		Plugins []map[string]any
	}
	if err := json.Unmarshal(with, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(without, &b); err != nil {
		t.Fatal(err)
	}
	// One network (the IPAM pool is per network name), one plugin fewer.
	if a.Name != b.Name || len(b.Plugins) != 1 || b.Plugins[0]["type"] != "bridge" || len(a.Plugins) != 2 {
		t.Errorf("with portmap %s\nwithout %s", with, without)
	}
}

func TestRuntimeHandler(t *testing.T) {
	k := testKubelet()
	k.cfg.NoHostPortHandler = "runc-nohostport"
	for _, tc := range []struct {
		name  string
		ports []*runtimeapi.PortMapping
		want  string
	}{
		{"no ports", nil, "runc-nohostport"},
		{"host port", []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}}, ""},
	} {
		if got := k.runtimeHandler(&runtimeapi.PodSandboxConfig{PortMappings: tc.ports}); got != tc.want {
			t.Errorf("%s: handler %q, want %q", tc.name, got, tc.want)
		}
	}
	k.cfg.NoHostPortHandler = ""
	if got := k.runtimeHandler(&runtimeapi.PodSandboxConfig{}); got != "" {
		t.Errorf("without a handler configured: %q", got)
	}
}
