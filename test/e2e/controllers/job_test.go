package controllers_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

var nodeOnce sync.Once

// setup creates the shared node (once) and a namespace for one test.
func setup(t *testing.T, ns string) (kubernetes.Interface, context.Context) {
	t.Helper()
	cs := srv.Client()
	ctx := framework.Context(t, 2*time.Minute)
	nodeOnce.Do(func() {
		alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("32Gi"),
			corev1.ResourcePods: resource.MustParse("110")}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker"}, Status: corev1.NodeStatus{Capacity: alloc, Allocatable: alloc}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		heartbeat(nil, cs, n.Name)
	})
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return cs, ctx
}

func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
}

func i32(v int32) *int32 { return &v }

// finishPod plays the kubelet: the container exits with code.
func finishPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, p *corev1.Pod, code int32) {
	t.Helper()
	p = p.DeepCopy()
	p.Status.Phase = corev1.PodSucceeded
	reason := "Completed"
	if code != 0 {
		p.Status.Phase, reason = corev1.PodFailed, "Error"
	}
	now := metav1.Now()
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", Image: "busybox", ImageID: "busybox",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, StartedAt: now, FinishedAt: now}}}}
	if _, err := cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("finish pod %s: %v", p.Name, err)
	}
}

// runJob plays the kubelet for the Job's pods (every bound, unfinished pod
// exits with code) until done(job) or the timeout. It returns the Job and
// the most pods it saw running at once.
func runJob(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, code int32, timeout time.Duration,
	done func(*batchv1.Job) bool) (*batchv1.Job, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	peak := 0
	for {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if done(j) {
			return j, peak
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not done after %v; status %+v", name, timeout, j.Status)
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			running++
			if p.Spec.NodeName != "" {
				finishPod(ctx, t, cs, p, code)
			}
		}
		peak = max(peak, running)
		time.Sleep(200 * time.Millisecond)
	}
}

func hasCondition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func eventReasons(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) []string {
	t.Helper()
	evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Reason)
	}
	return out
}

// waitEvents waits until the object has events with all the reasons (the
// recorder writes them asynchronously).
func waitEvents(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, reasons ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := eventReasons(ctx, t, cs, ns, name)
		missing := slices.DeleteFunc(slices.Clone(reasons), func(r string) bool { return slices.Contains(got, r) })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("events of %s: %v, missing %v", name, got, missing)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestJobCompletesWithParallelism(t *testing.T) {
	t.Parallel()
	ns := "job-complete"
	cs, ctx := setup(t, ns)
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi"}, Spec: batchv1.JobSpec{
		Completions: i32(3), Parallelism: i32(2), Template: podTemplate()}}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	j, peak := runJob(ctx, t, cs, ns, "pi", 0, 60*time.Second, func(j *batchv1.Job) bool { return hasCondition(j, batchv1.JobComplete) != nil })
	if peak > 2 {
		t.Errorf("%d pods ran at once, parallelism is 2", peak)
	}
	if j.Status.Succeeded != 3 || j.Status.Failed != 0 || j.Status.Active != 0 || j.Status.CompletionTime == nil || j.Status.StartTime == nil ||
		hasCondition(j, batchv1.JobSuccessCriteriaMet) == nil {
		t.Errorf("status %+v", j.Status)
	}
	if u := j.Status.UncountedTerminatedPods; u != nil && len(u.Succeeded)+len(u.Failed) > 0 {
		t.Errorf("uncounted pods left: %+v", u)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=pi"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 3 {
		t.Errorf("%d pods, want 3", len(pods.Items))
	}
	for _, p := range pods.Items {
		if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
			t.Errorf("pod %s keeps the tracking finalizer", p.Name)
		}
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != j.UID || p.Labels["controller-uid"] != string(j.UID) {
			t.Errorf("pod %s: owner %+v labels %v", p.Name, ref, p.Labels)
		}
	}
	waitEvents(ctx, t, cs, ns, "pi", "SuccessfulCreate", "Completed")
}

func TestJobBackoffLimitExceeded(t *testing.T) {
	t.Parallel()
	ns := "job-backoff"
	cs, ctx := setup(t, ns)
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "flaky"}, Spec: batchv1.JobSpec{BackoffLimit: i32(1), Template: podTemplate()}}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	j, _ := runJob(ctx, t, cs, ns, "flaky", 1, 60*time.Second, func(j *batchv1.Job) bool { return hasCondition(j, batchv1.JobFailed) != nil })
	c := hasCondition(j, batchv1.JobFailed)
	if c.Reason != batchv1.JobReasonBackoffLimitExceeded || hasCondition(j, batchv1.JobFailureTarget) == nil || j.Status.Failed != 2 || j.Status.Active != 0 {
		t.Errorf("status %+v", j.Status)
	}
	// The second pod waited out the 10 s back-off.
	if d := time.Since(start); d < 9*time.Second {
		t.Errorf("failed after %v: the replacement pod did not wait for the back-off", d)
	}
	waitEvents(ctx, t, cs, ns, "flaky", "SuccessfulCreate", "BackoffLimitExceeded")
}

func TestCronJobCreatesJob(t *testing.T) {
	t.Parallel()
	ns := "cronjob"
	cs, ctx := setup(t, ns)
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "tick"}, Spec: batchv1.CronJobSpec{Schedule: "*/1 * * * *",
		JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"from": "cron"}},
			Spec: batchv1.JobSpec{Template: podTemplate()}}}}
	cj, err := cs.BatchV1().CronJobs(ns).Create(ctx, cj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(75 * time.Second)
	var job *batchv1.Job
	for job == nil {
		if time.Now().After(deadline) {
			t.Fatal("no job within 75s")
		}
		jobs, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs.Items) > 0 {
			job = &jobs.Items[0]
		}
		time.Sleep(250 * time.Millisecond)
	}
	ts := job.Annotations[batchv1.CronJobScheduledTimestampAnnotation]
	at, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		t.Fatalf("scheduled timestamp %q: %v", ts, err)
	}
	if at.Second() != 0 || at.Before(cj.CreationTimestamp.Time) {
		t.Errorf("scheduled at %v, cronjob created %v", at, cj.CreationTimestamp)
	}
	if want := "tick-" + strconv.FormatInt(at.Unix()/60, 10); job.Name != want {
		t.Errorf("job name %s, want %s", job.Name, want)
	}
	if ref := metav1.GetControllerOf(job); ref == nil || ref.Kind != "CronJob" || ref.UID != cj.UID || job.Labels["from"] != "cron" {
		t.Errorf("job meta: owner %+v labels %v", ref, job.Labels)
	}
	// The CronJob records it as active.
	for {
		got, err := cs.BatchV1().CronJobs(ns).Get(ctx, "tick", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Status.Active) == 1 && got.Status.Active[0].Name == job.Name && got.Status.LastScheduleTime != nil &&
			got.Status.LastScheduleTime.Time.Equal(at) {
			break
		}
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("cronjob status %+v", got.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Its job runs: the job controller picks it up.
	j, _ := runJob(ctx, t, cs, ns, job.Name, 0, 30*time.Second, func(j *batchv1.Job) bool { return hasCondition(j, batchv1.JobComplete) != nil })
	for {
		got, err := cs.BatchV1().CronJobs(ns).Get(ctx, "tick", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Status.Active) == 0 && got.Status.LastSuccessfulTime != nil {
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("cronjob status after job %s completed (%v): %+v", j.Name, j.Status.CompletionTime, got.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitEvents(ctx, t, cs, ns, "tick", "SuccessfulCreate", "SawCompletedJob")
}
