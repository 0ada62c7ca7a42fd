package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// podLog reads a container's CRI log file (attempt 0) from the agent's data
// dir: there is no `kubectl logs` yet.
func podLog(a *framework.Agent, p *corev1.Pod, container string) string {
	b, _ := os.ReadFile(filepath.Join(a.DataDir, "agent", "pods", "logs",
		p.Namespace+"_"+p.Name+"_"+string(p.UID), container, "0.log"))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		// <time> <stream> <P|F> <text>
		if f := strings.SplitN(l, " ", 4); len(f) == 4 {
			out = append(out, f[3])
		}
	}
	return strings.Join(out, "\n")
}

// execIn runs cmd in a pod's container through the agent's CRI socket.
func execIn(t *testing.T, rt *cri.Client, containerID string, cmd ...string) (string, int32) {
	t.Helper()
	_, id, _ := strings.Cut(containerID, "://")
	r, err := rt.ExecSync(context.Background(), id, cmd, 10*time.Second)
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	return string(r.Stdout) + string(r.Stderr), r.ExitCode
}

func createObj(t *testing.T, cs kubernetes.Interface, p *corev1.Pod) {
	t.Helper()
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestKubeletWorkloads(t *testing.T) {
	framework.RequireRoot(t)
	// hostPath volumes live here, not in a subtest's TempDir: the test's
	// first TempDir is removed last, once the agent's clean-up has removed
	// the pods (a running pod's volume set-up re-creates a
	// DirectoryOrCreate path).
	hostRoot := t.TempDir()
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 50+n%50))
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	a := framework.StartAgent(t, srv, "workload-e2e", fmt.Sprintf("skw%d", n%100000))
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	rt, err := cri.Dial(containerd.Socket(a.DataDir), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()

	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
		Data: map[string]string{"color": "blue", "greeting": "hello"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"},
		Data: map[string][]byte{"password": []byte("s3cr3t")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("env and volumes", func(t *testing.T) {
		p := framework.BusyboxPod("envvol", "sh", "-c", strings.Join([]string{
			"echo COLOR=$COLOR PW=$PW NAME=$MY_NAME NS=$MY_NS IP=$MY_IP NODE=$MY_NODE MEM=$MEM CM_greeting=$CM_greeting",
			"echo 'ARG=$(COLOR)/$$(COLOR)'",
			"echo FILE_COLOR=$(cat /etc/cfg/color) FILE_PW=$(cat /etc/sec/password) FILE_ONE=$(cat /etc/k1)",
			"echo DAPI=$(cat /etc/podinfo/labels) PROJ=$(cat /etc/proj/pw)",
			"echo shared > /scratch/f; echo SCRATCH=$(cat /scratch/f) MEMFS=$(grep ' /mem ' /proc/mounts | cut -d' ' -f3)",
			"echo RO=$(touch /etc/cfg/x >/dev/null 2>&1 && echo writable || echo readonly)",
			"sleep 3600"}, "; "))
		p.Labels = map[string]string{"app": "envvol"}
		c := &p.Spec.Containers[0]
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
		field := func(path string) *corev1.EnvVarSource {
			return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
		}
		c.Env = []corev1.EnvVar{
			{Name: "COLOR", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "color"}}},
			{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
			{Name: "MY_NAME", ValueFrom: field("metadata.name")}, {Name: "MY_NS", ValueFrom: field("metadata.namespace")},
			{Name: "MY_IP", ValueFrom: field("status.podIP")}, {Name: "MY_NODE", ValueFrom: field("spec.nodeName")},
			{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
				Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		}
		c.EnvFrom = []corev1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}, {Name: "sec", MountPath: "/etc/sec"},
			{Name: "cfg", MountPath: "/etc/k1", SubPath: "greeting"},
			{Name: "podinfo", MountPath: "/etc/podinfo"}, {Name: "proj", MountPath: "/etc/proj"},
			{Name: "scratch", MountPath: "/scratch"}, {Name: "mem", MountPath: "/mem"}}
		p.Spec.Volumes = []corev1.Volume{
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
			{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
			{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"},
					Items: []corev1.KeyToPath{{Key: "password", Path: "pw"}}}}}}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		}
		createObj(t, cs, p)
		p = framework.WaitPod(t, cs, "envvol", 60*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		want := []string{
			fmt.Sprintf("COLOR=blue PW=s3cr3t NAME=envvol NS=default IP=%s NODE=workload-e2e MEM=64 CM_greeting=hello", p.Status.PodIP),
			"ARG=blue/$(COLOR)",
			"FILE_COLOR=blue FILE_PW=s3cr3t FILE_ONE=hello",
			`DAPI=app="envvol" PROJ=s3cr3t`,
			"SCRATCH=shared MEMFS=tmpfs",
			"RO=readonly",
		}
		var log string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if log = podLog(a, p, "main"); strings.Count(log, "\n") >= len(want)-1 {
				break
			}
		}
		for _, w := range want {
			if !strings.Contains(log, w) {
				t.Errorf("log lacks %q:\n%s", w, log)
			}
		}
		// The emptyDir is on the host under the pod's dir.
		if b, err := os.ReadFile(filepath.Join(a.DataDir, "agent", "pods", string(p.UID), "volumes", "kubernetes.io~empty-dir", "scratch", "f")); err != nil || string(b) != "shared\n" {
			t.Errorf("emptyDir file on the host: %q %v", b, err)
		}

		// The secret volume is on a tmpfs, as upstream keeps secrets off
		// the node's disk.
		var st syscall.Statfs_t
		secretDir := filepath.Join(containerd.PodFilesDir(a.DataDir), string(p.UID), "volumes", "kubernetes.io~secret", "sec")
		if err := syscall.Statfs(secretDir, &st); err != nil || st.Type != 0x01021994 {
			t.Errorf("secret volume %s: file system type %#x, %v; want a tmpfs", secretDir, st.Type, err)
		}

		// An update of the config map reaches the mounted file.
		cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "cfg", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["color"] = "red"
		if _, err := cs.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			if got, _ := execIn(t, rt, p.Status.ContainerStatuses[0].ContainerID, "cat", "/etc/cfg/color"); got == "red" {
				break
			}
			if time.Since(start) > 60*time.Second {
				t.Fatalf("config map update not in the volume after 60s")
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("config map update reached the volume after %v", time.Since(start).Round(time.Millisecond))

		// Deleting the pod removes its volumes (and unmounts the tmpfs).
		if err := cs.CoreV1().Pods("default").Delete(ctx, "envvol", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The config map, secret and token files were on the containerd
		// state tmpfs, beside the termination-message files.
		podDir := filepath.Join(a.DataDir, "agent", "pods", string(p.UID))
		podFiles := filepath.Join(containerd.PodFilesDir(a.DataDir), string(p.UID))
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			_, errDir := os.Stat(podDir)
			_, errFiles := os.Stat(podFiles)
			if os.IsNotExist(errDir) && os.IsNotExist(errFiles) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod dir %s (%v) or pod files %s (%v) still there 15s after delete", podDir, errDir, podFiles, errFiles)
			}
		}
	})

	t.Run("missing config map", func(t *testing.T) {
		p := framework.BusyboxPod("nocfg", "sleep", "3600")
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "later"}, Key: "k"}}}}
		createObj(t, cs, p)
		p = framework.WaitPod(t, cs, "nocfg", 30*time.Second, "CreateContainerConfigError", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
				p.Status.ContainerStatuses[0].State.Waiting.Reason == "CreateContainerConfigError"
		})
		if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; msg != `configmap "later" not found` {
			t.Errorf("message %q", msg)
		}
		// The pod is retried: once the config map exists, it runs.
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later"},
			Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		framework.WaitPod(t, cs, "nocfg", 30*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	})

	t.Run("missing volume source, hostPath", func(t *testing.T) {
		hostDir := filepath.Join(hostRoot, "made", "here")
		dirOrCreate := corev1.HostPathDirectoryOrCreate
		p := framework.BusyboxPod("novol", "sh", "-c", "cat /cfg/k > /host/out; sleep 3600")
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}, {Name: "host", MountPath: "/host"}}
		p.Spec.Volumes = []corev1.Volume{
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "vol-later"}}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &dirOrCreate}}},
		}
		createObj(t, cs, p)
		p = framework.WaitPod(t, cs, "novol", 30*time.Second, "waiting on its volume", func(p *corev1.Pod) bool {
			w := p.Status.ContainerStatuses
			return len(w) == 1 && w[0].State.Waiting != nil && strings.Contains(w[0].State.Waiting.Message, `configmap "vol-later" not found`)
		})
		if w := p.Status.ContainerStatuses[0].State.Waiting; w.Reason != "ContainerCreating" {
			t.Errorf("waiting %+v", w)
		}
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vol-later"},
			Data: map[string]string{"k": "from-volume"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		framework.WaitPod(t, cs, "novol", 30*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if b, _ := os.ReadFile(filepath.Join(hostDir, "out")); string(b) == "from-volume" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("hostPath %s/out not written", hostDir)
			}
		}
	})

	t.Run("readiness probe", func(t *testing.T) {
		p := framework.BusyboxPod("ready", "sleep", "3600")
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}}, PeriodSeconds: 1}
		createObj(t, cs, p)
		p = framework.WaitPod(t, cs, "ready", 30*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		time.Sleep(2 * time.Second)
		if p, _ = cs.CoreV1().Pods("default").Get(ctx, "ready", metav1.GetOptions{}); framework.PodReady(p) || p.Status.ContainerStatuses[0].Ready {
			t.Fatalf("pod Ready before its probe passes: %+v", p.Status)
		}
		id := p.Status.ContainerStatuses[0].ContainerID
		execIn(t, rt, id, "touch", "/tmp/ready")
		p = framework.WaitPod(t, cs, "ready", 10*time.Second, "Ready", func(p *corev1.Pod) bool {
			return framework.PodReady(p) && p.Status.ContainerStatuses[0].Ready && condition(p, corev1.ContainersReady)
		})
		execIn(t, rt, id, "rm", "/tmp/ready")
		framework.WaitPod(t, cs, "ready", 10*time.Second, "not Ready", func(p *corev1.Pod) bool {
			return !framework.PodReady(p) && !p.Status.ContainerStatuses[0].Ready && !condition(p, corev1.ContainersReady) &&
				p.Status.ContainerStatuses[0].RestartCount == 0
		})
	})

	t.Run("http and tcp probes", func(t *testing.T) {
		p := framework.BusyboxPod("web", "sh", "-c", "mkdir /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www")
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
		c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1, FailureThreshold: 30}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromString("http")}},
			PeriodSeconds: 1}
		c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1}
		createObj(t, cs, p)
		p = framework.WaitPod(t, cs, "web", 30*time.Second, "Ready", func(p *corev1.Pod) bool {
			return framework.PodReady(p) && p.Status.ContainerStatuses[0].Started != nil && *p.Status.ContainerStatuses[0].Started
		})
		time.Sleep(3 * time.Second)
		if p, _ = cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); !framework.PodReady(p) || p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("web pod after 3s: %+v", p.Status)
		}
	})

	t.Run("liveness probe restarts", func(t *testing.T) {
		p := framework.BusyboxPod("live", "sleep", "3600")
		p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/alive"}}}, InitialDelaySeconds: 1, PeriodSeconds: 1, FailureThreshold: 2}
		createObj(t, cs, p)
		start := time.Now()
		p = framework.WaitPod(t, cs, "live", 60*time.Second, "restarted", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
		})
		t.Logf("restarted after %v; last state %+v", time.Since(start).Round(time.Millisecond), p.Status.ContainerStatuses[0].LastTerminationState.Terminated)
		if p.Status.ContainerStatuses[0].LastTerminationState.Terminated == nil {
			t.Errorf("no last state: %+v", p.Status.ContainerStatuses[0])
		}
	})
}

func condition(p *corev1.Pod, typ corev1.PodConditionType) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
