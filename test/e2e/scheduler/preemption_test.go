package scheduler_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// priorityClasses creates classes name=value, deleted at the end.
func priorityClasses(t *testing.T, ctx context.Context, cs kubernetes.Interface, classes map[string]int32) {
	t.Helper()
	for name, v := range classes {
		pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: v}
		if _, err := cs.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.SchedulingV1().PriorityClasses().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
}

func withPriority(class string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.PriorityClassName = class }
}

func condition(p *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == typ {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// preempted waits until victim is being deleted with the scheduler's
// DisruptionTarget condition and a Preempted event, then removes it as a
// kubelet would once its containers stopped.
func preempted(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, victim string) {
	t.Helper()
	p := waitFor(t, cs, ns, victim, func(p *corev1.Pod) bool { return p.DeletionTimestamp != nil }, "deletionTimestamp")
	if c := condition(p, corev1.DisruptionTarget); c == nil || c.Status != corev1.ConditionTrue || c.Reason != corev1.PodReasonPreemptionByScheduler {
		t.Errorf("victim %s condition %+v, want DisruptionTarget=True PreemptionByScheduler", victim, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + victim + ",reason=Preempted"})
		if err == nil && len(ev.Items) > 0 {
			if !strings.HasPrefix(ev.Items[0].Message, "Preempted by pod ") {
				t.Errorf("Preempted event message %q", ev.Items[0].Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no Preempted event for %s: %v", victim, err)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, victim, *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
}

func nominated(p *corev1.Pod) bool { return p.Status.NominatedNodeName != "" }

func TestPreemption(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, 2*time.Minute)
	priorityClasses(t, ctx, cs, map[string]int32{"e2e-low": 100, "e2e-high": 1000})
	ns := "preempt"
	create := constraintNamespace(t, ctx, cs, ns)
	for _, name := range []string{"preempt-1"} {
		t.Cleanup(func() { cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
		if _, err := cs.CoreV1().Nodes().Create(ctx, node(name, "1", map[string]string{"group": "preempt"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(pod("victim", "1", inGroup("preempt", "low"), withPriority("e2e-low")))
	waitFor(t, cs, ns, "victim", bound, "bound")

	create(pod("preemptor", "1", inGroup("preempt", "high"), withPriority("e2e-high")))
	p := waitFor(t, cs, ns, "preemptor", nominated, "nominatedNodeName")
	if p.Spec.NodeName != "" || p.Status.NominatedNodeName != "preempt-1" {
		t.Fatalf("preemptor on %q nominated to %q", p.Spec.NodeName, p.Status.NominatedNodeName)
	}
	if *p.Spec.Priority != 1000 {
		t.Errorf("preemptor priority %d", *p.Spec.Priority)
	}
	preempted(t, ctx, cs, ns, "victim")
	if p := waitFor(t, cs, ns, "preemptor", bound, "bound after the victim is gone"); p.Spec.NodeName != "preempt-1" {
		t.Errorf("preemptor bound to %s", p.Spec.NodeName)
	}

	// preemptionPolicy Never: waits instead.
	never := corev1.PreemptNever
	create(pod("polite", "1", inGroup("preempt", "high"), withPriority("e2e-high"), func(p *corev1.Pod) { p.Spec.PreemptionPolicy = &never }))
	p = waitFor(t, cs, ns, "polite", func(p *corev1.Pod) bool { return pendingWith(p) != "" }, "PodScheduled=False")
	time.Sleep(time.Second)
	if p, _ = cs.CoreV1().Pods(ns).Get(ctx, "polite", metav1.GetOptions{}); p.Status.NominatedNodeName != "" {
		t.Errorf("pod with preemptionPolicy Never nominated to %s", p.Status.NominatedNodeName)
	}
}

// Of two nodes where preemption helps, the one whose victim no
// PodDisruptionBudget protects is chosen, although its victim has the
// higher priority.
func TestPreemptionAvoidsPDBViolation(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, 2*time.Minute)
	priorityClasses(t, ctx, cs, map[string]int32{"e2e-pdb-low": 100, "e2e-pdb-mid": 500, "e2e-pdb-high": 1000})
	ns := "preempt-pdb"
	create := constraintNamespace(t, ctx, cs, ns)
	for _, name := range []string{"pdb-1", "pdb-2"} {
		t.Cleanup(func() { cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
		if _, err := cs.CoreV1().Nodes().Create(ctx, node(name, "1", map[string]string{"group": "pdb"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// No disruption controller runs: status.disruptionsAllowed stays 0.
	one := intstr.FromInt32(1)
	if _, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	create(pod("db", "1", inGroup("pdb", "db"), withPriority("e2e-pdb-low")))
	db := waitFor(t, cs, ns, "db", bound, "bound")
	create(pod("web", "1", inGroup("pdb", "web"), withPriority("e2e-pdb-mid")))
	web := waitFor(t, cs, ns, "web", bound, "bound")

	create(pod("preemptor", "1", inGroup("pdb", "high"), withPriority("e2e-pdb-high")))
	p := waitFor(t, cs, ns, "preemptor", nominated, "nominatedNodeName")
	if p.Status.NominatedNodeName != web.Spec.NodeName {
		t.Fatalf("nominated to %s; web (unprotected) is on %s, db (PDB) on %s", p.Status.NominatedNodeName, web.Spec.NodeName, db.Spec.NodeName)
	}
	preempted(t, ctx, cs, ns, "web")
	waitFor(t, cs, ns, "preemptor", bound, "bound")
	if p, err := cs.CoreV1().Pods(ns).Get(ctx, "db", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Errorf("PDB-protected pod was preempted: %v %v", err, p.DeletionTimestamp)
	}
}

// A server whose scheduler runs a --scheduler-config profile: its own
// scheduler name, and TaintToleration not scoring, so an empty node with
// a PreferNoSchedule taint beats a busy untainted one.
func TestSchedulerConfigFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "sched.yaml")
	if err := os.WriteFile(good, []byte(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: e2e-custom
  plugins:
    score:
      disabled:
      - name: TaintToleration
`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- plugins:\n    score:\n      enabled: [{name: NoSuchPlugin}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(framework.Binary(t), "scheduler", "--kubeconfig", srv.Kubeconfig, "--config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown plugin "NoSuchPlugin"`) {
		t.Errorf("skiff scheduler --config with an unknown plugin: %v\n%s", err, out)
	}

	s := framework.StartServer(t, "--scheduler-config", good, "--disable-controllers", "--disable-admission-plugins", "ServiceAccount")
	cs := s.Client()
	ctx := framework.Context(t, 2*time.Minute)
	tainted := node("tainted", "8", nil, corev1.Taint{Key: "spare", Value: "yes", Effect: corev1.TaintEffectPreferNoSchedule})
	for _, n := range []*corev1.Node{tainted, node("busy", "8", nil)} {
		if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	custom := func(p *corev1.Pod) { p.Spec.SchedulerName = "e2e-custom" }
	for _, p := range []*corev1.Pod{pod("filler", "6", func(p *corev1.Pod) { p.Spec.NodeName = "busy" }), pod("probe", "100m", custom), pod("default", "100m")} {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if p.Name == "filler" {
			time.Sleep(time.Second) // let the scheduler's informer see it
		}
	}
	if p := waitFor(t, cs, "default", "probe", bound, "bound by e2e-custom"); p.Spec.NodeName != "tainted" {
		t.Errorf("probe on %s, want the empty tainted node (TaintToleration scoring disabled)", p.Spec.NodeName)
	}
	if p, _ := cs.CoreV1().Pods("default").Get(ctx, "default", metav1.GetOptions{}); p.Spec.NodeName != "" {
		t.Errorf("pod for default-scheduler bound to %s by the e2e-custom scheduler", p.Spec.NodeName)
	}
}
