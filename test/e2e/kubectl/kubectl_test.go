// Package kubectl_test drives real kubectl binaries (several versions,
// default flags, fresh HOME) against a real `skiff server`.
package kubectl_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

const manifest = `apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: demo
  labels:
    app: demo
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels:
    app: demo
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
`

func TestKubectl(t *testing.T) {
	for _, v := range []string{"1.27", "1.32", "1.33"} {
		t.Run(v, func(t *testing.T) { runScenario(t, v) })
	}
}

// expect fails unless out contains every want.
func expect(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// expectRE fails unless out matches every pattern.
func expectRE(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			t.Errorf("%s: output does not match %q:\n%s", what, p, out)
		}
	}
}

func runScenario(t *testing.T, version string) {
	s := framework.StartServer(t)
	k := s.NewKubectl(t, version)
	cs := s.Client()
	ctx := framework.Context(t, 5*time.Minute)

	t.Run("discovery", func(t *testing.T) {
		k := k.With(t)
		expect(t, "api-versions", k.MustRun("api-versions"), "v1\n", "apps/v1\n", "batch/v1\n", "coordination.k8s.io/v1\n",
			"discovery.k8s.io/v1\n", "events.k8s.io/v1\n", "policy/v1\n", "scheduling.k8s.io/v1\n")
		out := k.MustRun("api-resources")
		expectRE(t, "api-resources", out, `(?m)^pods\s+po\s+v1\s+true\s+Pod$`, `(?m)^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$`,
			`(?m)^namespaces\s+ns\s+v1\s+false\s+Namespace$`, `(?m)^leases\s+coordination.k8s.io/v1\s+true\s+Lease$`)
	})

	t.Run("apply", func(t *testing.T) {
		k := k.With(t)
		out := k.Apply(manifest)
		expect(t, "first apply", out, "namespace/demo created", "configmap/cfg created", "deployment.apps/web created", "service/web created")
		changed := strings.Replace(strings.Replace(manifest, "greeting: hello", "greeting: hi", 1), "replicas: 1", "replicas: 2", 1)
		out = k.Apply(changed)
		expect(t, "second apply", out, "namespace/demo unchanged", "configmap/cfg configured", "deployment.apps/web configured", "service/web unchanged")
		if got := k.MustRun("get", "cm", "cfg", "-n", "demo", "-o", "jsonpath={.data.greeting}"); got != "hi" {
			t.Errorf("configmap after apply: %q", got)
		}
	})

	t.Run("get", func(t *testing.T) {
		k := k.With(t)
		expectRE(t, "get deploy", k.MustRun("get", "deployments", "-n", "demo"), `NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE`, `web\s+0/2\s+[02]\s+0\s+\d+s`) // no kubelet: the pods never become ready
		expectRE(t, "get deploy -o wide", k.MustRun("get", "deploy", "-n", "demo", "-o", "wide"), `CONTAINERS\s+IMAGES\s+SELECTOR`, `nginx\s+nginx:1.25\s+app=web`)
		expectRE(t, "get svc", k.MustRun("get", "svc", "-n", "demo"), `NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE`, `web\s+ClusterIP\s+10\.43\.\d+\.\d+\s+<none>\s+80/TCP`)
		expect(t, "get -o yaml", k.MustRun("get", "deploy", "web", "-n", "demo", "-o", "yaml"), "kind: Deployment", "replicas: 2", "uid:", "resourceVersion:")
		if got := k.MustRun("get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas} {.spec.strategy.type}"); got != "2 RollingUpdate" {
			t.Errorf("jsonpath: %q", got)
		}
		expectRE(t, "get -l", k.MustRun("get", "cm,deploy", "-n", "demo", "-l", "app=demo", "-o", "name"), `configmap/cfg`, `deployment.apps/web`)
		if out := k.MustRun("get", "cm", "-n", "demo", "-l", "app=nothing", "-o", "name"); strings.TrimSpace(out) != "" {
			t.Errorf("label selector matched %q", out)
		}
		if out := k.MustRun("get", "cm", "-n", "demo", "--field-selector", "metadata.name=cfg", "-o", "name"); strings.TrimSpace(out) != "configmap/cfg" {
			t.Errorf("field selector: %q", out)
		}
		expectRE(t, "get -A", k.MustRun("get", "svc", "-A"), `NAMESPACE\s+NAME\s+TYPE`, `(?m)^default\s+kubernetes\s+ClusterIP\s+10\.43\.0\.1`, `(?m)^demo\s+web\s+`)
		expectRE(t, "--show-labels", k.MustRun("get", "cm", "cfg", "-n", "demo", "--show-labels"), `LABELS`, `app=demo`)
		expectRE(t, "get ns", k.MustRun("get", "ns"), `NAME\s+STATUS\s+AGE`, `(?m)^kube-system\s+Active`)
	})

	t.Run("watch", func(t *testing.T) {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(wctx, filepath.Join(framework.KubectlDir, "kubectl."+version), "get", "cm", "-n", "demo", "-w")
		cmd.Env = []string{"HOME=" + t.TempDir(), "KUBECONFIG=" + s.Kubeconfig}
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		waitLine(t, lines, "cfg", "initial list")
		if _, err := cs.CoreV1().ConfigMaps("demo").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitLine(t, lines, "later", "object created after the watch started")
	})

	t.Run("describe", func(t *testing.T) {
		k := k.With(t)
		expectRE(t, "describe deploy", k.MustRun("describe", "deployment", "web", "-n", "demo"), `Name:\s+web`, `Namespace:\s+demo`, `Replicas:\s+2 desired`, `StrategyType:\s+RollingUpdate`, `Image:\s+nginx:1.25`)
		expectRE(t, "describe cm", k.MustRun("describe", "cm", "cfg", "-n", "demo"), `Name:\s+cfg`, `greeting:`, `hi`)
	})

	t.Run("edit", func(t *testing.T) {
		k := k.With(t)
		editor := filepath.Join(t.TempDir(), "editor.sh")
		if err := os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/greeting: hi/greeting: edited/' \"$1\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		k.Env = []string{"KUBE_EDITOR=" + editor}
		defer func() { k.Env = nil }()
		expect(t, "edit", k.MustRun("edit", "cm", "cfg", "-n", "demo"), "configmap/cfg edited")
		if got := k.MustRun("get", "cm", "cfg", "-n", "demo", "-o", "jsonpath={.data.greeting}"); got != "edited" {
			t.Errorf("after edit: %q", got)
		}
	})

	t.Run("label-annotate", func(t *testing.T) {
		k := k.With(t)
		expect(t, "label", k.MustRun("label", "cm", "cfg", "-n", "demo", "tier=backend"), "configmap/cfg labeled")
		expect(t, "annotate", k.MustRun("annotate", "cm", "cfg", "-n", "demo", "note=hello"), "configmap/cfg annotate") // 1.27 prints "annotate", later versions "annotated"
		cm, err := cs.CoreV1().ConfigMaps("demo").Get(ctx, "cfg", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Labels["tier"] != "backend" || cm.Annotations["note"] != "hello" {
			t.Errorf("labels %v annotations %v", cm.Labels, cm.Annotations)
		}
		expect(t, "label remove", k.MustRun("label", "cm", "cfg", "-n", "demo", "tier-"), "configmap/cfg unlabeled")
	})

	t.Run("patch", func(t *testing.T) {
		k := k.With(t)
		k.MustRun("patch", "cm", "cfg", "-n", "demo", "--type", "merge", "-p", `{"data":{"m":"merge"}}`)
		k.MustRun("patch", "cm", "cfg", "-n", "demo", "--type", "json", "-p", `[{"op":"add","path":"/data/j","value":"json"}]`)
		k.MustRun("patch", "deploy", "web", "-n", "demo", "--type", "strategic", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}}}`)
		if got := k.MustRun("get", "cm", "cfg", "-n", "demo", "-o", "jsonpath={.data.m},{.data.j}"); got != "merge,json" {
			t.Errorf("after patches: %q", got)
		}
		if got := k.MustRun("get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.template.spec.containers[*].image} {.spec.template.spec.containers[0].ports[0].containerPort}"); got != "nginx:1.26 80" {
			t.Errorf("strategic merge patch kept the container list wrong: %q", got)
		}
		r := k.Run("patch", "cm", "cfg", "-n", "demo", "--type", "json", "-p", `[{"op":"test","path":"/data/j","value":"nope"}]`)
		if r.Err == nil {
			t.Errorf("failing json-patch test op succeeded: %s", r.Stdout)
		}
	})

	t.Run("scale", func(t *testing.T) {
		k := k.With(t)
		expect(t, "scale", k.MustRun("scale", "deploy", "web", "-n", "demo", "--replicas=3"), "deployment.apps/web scaled")
		if got := k.MustRun("get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas}"); got != "3" {
			t.Errorf("replicas after scale: %q", got)
		}
	})

	t.Run("wait", func(t *testing.T) {
		k := k.With(t)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "waiter", Namespace: "demo"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if _, err := cs.CoreV1().Pods("demo").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(time.Second)
			p, err := cs.CoreV1().Pods("demo").Get(ctx, "waiter", metav1.GetOptions{})
			if err != nil {
				return
			}
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
			cs.CoreV1().Pods("demo").UpdateStatus(ctx, p, metav1.UpdateOptions{})
		}()
		expect(t, "wait", k.MustRun("wait", "--for=condition=Ready", "pod/waiter", "-n", "demo", "--timeout=30s"), "pod/waiter condition met")
	})

	t.Run("server-side-apply", func(t *testing.T) {
		k := k.With(t)
		cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: demo\ndata:\n  owner: first\n"
		expect(t, "apply --server-side", k.Apply(cm, "--server-side"), "configmap/ssa serverside-applied")
		k.Stdin = strings.Replace(cm, "first", "second", 1)
		r := k.Run("apply", "-f", "-", "--server-side", "--field-manager=other")
		k.Stdin = ""
		if r.Err == nil || !strings.Contains(r.Stderr, "conflict") {
			t.Errorf("conflicting server-side apply: err %v stderr %q", r.Err, r.Stderr)
		}
		expect(t, "apply --force-conflicts", k.Apply(strings.Replace(cm, "first", "second", 1), "--server-side", "--field-manager=other", "--force-conflicts"), "configmap/ssa serverside-applied")
		got, err := cs.CoreV1().ConfigMaps("demo").Get(ctx, "ssa", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Data["owner"] != "second" {
			t.Errorf("data after forced apply: %v", got.Data)
		}
		managers := map[string]bool{}
		for _, m := range got.ManagedFields {
			managers[m.Manager] = true
		}
		if !managers["other"] {
			t.Errorf("managedFields lack manager other: %+v", got.ManagedFields)
		}
	})

	t.Run("diff", func(t *testing.T) {
		k := k.With(t)
		k.Stdin = strings.Replace(manifest, "replicas: 1", "replicas: 5", 1)
		r := k.Run("diff", "-f", "-")
		k.Stdin = ""
		if ee, ok := r.Err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("kubectl diff exit: %v (want 1 = differences)\n%s", r.Err, r.Stderr)
		}
		expect(t, "diff", r.Stdout, "+  replicas: 5")
		if got := k.MustRun("get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas}"); got != "3" {
			t.Errorf("diff changed the object: replicas %q", got)
		}
	})

	t.Run("explain", func(t *testing.T) {
		k := k.With(t)
		expectRE(t, "explain", k.MustRun("explain", "pods.spec.containers"), `KIND:\s+Pod`, `FIELD:\s+containers`, `image\s+<string>`)
	})

	t.Run("create", func(t *testing.T) {
		k := k.With(t)
		expect(t, "create ns", k.MustRun("create", "namespace", "made"), "namespace/made created")
		expect(t, "create cm", k.MustRun("create", "configmap", "lit", "-n", "made", "--from-literal=k=v"), "configmap/lit created")
		expect(t, "create secret", k.MustRun("create", "secret", "generic", "sec", "-n", "made", "--from-literal=password=s3cret"), "secret/sec created")
		if got := k.MustRun("get", "secret", "sec", "-n", "made", "-o", "jsonpath={.data.password}"); got != "czNjcmV0" {
			t.Errorf("secret data: %q", got)
		}
		r := k.Run("create", "configmap", "Bad_Name")
		if r.Err == nil || !strings.Contains(r.Stderr, "Invalid value") {
			t.Errorf("invalid name accepted or unclear: %v %q", r.Err, r.Stderr)
		}
	})

	t.Run("delete", func(t *testing.T) {
		k := k.With(t)
		expect(t, "delete cm", k.MustRun("delete", "cm", "lit", "-n", "made"), `configmap "lit" deleted`)
		if r := k.Run("get", "cm", "lit", "-n", "made"); r.Err == nil || !strings.Contains(r.Stderr, "NotFound") {
			t.Errorf("configmap still there: %v %q", r.Err, r.Stderr)
		}
		expect(t, "delete deploy+svc", k.MustRun("delete", "deploy/web", "svc/web", "-n", "demo", "--timeout=60s"),
			`deployment.apps "web" deleted`, `service "web" deleted`)
		if r := k.Run("get", "svc", "web", "-n", "demo"); r.Err == nil {
			t.Errorf("service still there after delete: %s", r.Stdout)
		}
	})
}

// waitLine reads lines until one contains want.
func waitLine(t *testing.T, lines <-chan string, want, what string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s: kubectl get -w ended before printing %q", what, want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("%s: no line with %q within 20s", what, want)
		}
	}
}
