package job

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

// fixture runs the controller against a fake clientset; sync copies the
// clientset's objects into the informer caches first, so each sync sees
// what the previous one wrote (a perfectly caught-up cache).
type fixture struct {
	t   *testing.T
	cs  *fake.Clientset
	inf informers.SharedInformerFactory
	c   *Controller
	rec *record.FakeRecorder
	now time.Time
	n   int
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{t: t, cs: fake.NewClientset(objs...), now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	f.cs.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		p := a.(clienttesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			f.n++
			p.Name = fmt.Sprintf("%s%d", p.GenerateName, f.n)
		}
		p.UID = types.UID("uid-" + p.Name)
		p.CreationTimestamp = metav1.NewTime(f.now.Add(time.Duration(f.n) * time.Millisecond))
		return false, nil, nil
	})
	f.inf = informers.NewSharedInformerFactory(f.cs, 0)
	c, err := New(&controller.Context{Client: f.cs, Informers: f.inf, Broadcaster: record.NewBroadcaster(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.rec = record.NewFakeRecorder(100)
	c.recorder = f.rec
	c.now = func() time.Time { return f.now }
	f.c = c
	t.Cleanup(func() { c.queue.ShutDown(); c.orphans.ShutDown() })
	return f
}

func (f *fixture) refresh() {
	f.t.Helper()
	ctx := context.Background()
	pods, err := f.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var objs []any
	for i := range pods.Items {
		objs = append(objs, &pods.Items[i])
	}
	if err := f.inf.Core().V1().Pods().Informer().GetIndexer().Replace(objs, ""); err != nil {
		f.t.Fatal(err)
	}
	jobs, err := f.cs.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	objs = nil
	for i := range jobs.Items {
		objs = append(objs, &jobs.Items[i])
	}
	if err := f.inf.Batch().V1().Jobs().Informer().GetIndexer().Replace(objs, ""); err != nil {
		f.t.Fatal(err)
	}
	// The cache is exact: nothing is outstanding.
	f.c.exp = controller.NewExpectations()
	f.c.fin = newFinalizerExpectations()
}

func (f *fixture) sync(name string) *batchv1.Job {
	f.t.Helper()
	f.refresh()
	if err := f.c.sync(context.Background(), "ns/"+name); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	j, err := f.cs.BatchV1().Jobs("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

func (f *fixture) pods() []corev1.Pod {
	f.t.Helper()
	l, err := f.cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	slices.SortFunc(l.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return l.Items
}

func (f *fixture) activePods() []corev1.Pod {
	var out []corev1.Pod
	for _, p := range f.pods() {
		if controller.IsPodActive(&p) {
			out = append(out, p)
		}
	}
	return out
}

// finish plays the kubelet: the pod ends with exitCode (0 = Succeeded).
func (f *fixture) finish(name string, exitCode int32) {
	f.t.Helper()
	ctx := context.Background()
	p, err := f.cs.CoreV1().Pods("ns").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	p.Status.Phase = corev1.PodSucceeded
	if exitCode != 0 {
		p.Status.Phase = corev1.PodFailed
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: exitCode, FinishedAt: metav1.NewTime(f.now)}}}}
	if _, err := f.cs.CoreV1().Pods("ns").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func i32(v int32) *int32 { return &v }
func i64(v int64) *int64 { return &v }

func newJob(name string, mutate ...func(*batchv1.Job)) *batchv1.Job {
	uid := types.UID("job-" + name)
	lbls := map[string]string{batchv1.ControllerUidLabel: string(uid), batchv1.JobNameLabel: name, "controller-uid": string(uid), "job-name": name}
	nonIndexed, f := batchv1.NonIndexedCompletion, false
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: uid},
		Spec: batchv1.JobSpec{
			Completions: i32(1), Parallelism: i32(1), BackoffLimit: i32(6), CompletionMode: &nonIndexed, Suspend: &f,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: string(uid)}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbls}, Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}},
		},
	}
	for _, m := range mutate {
		m(j)
	}
	return j
}

func condition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == t {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func TestCompletionsWithParallelism(t *testing.T) {
	f := newFixture(t, newJob("j", func(j *batchv1.Job) { j.Spec.Completions, j.Spec.Parallelism = i32(3), i32(2) }))
	j := f.sync("j")
	pods := f.pods()
	if len(pods) != 2 || j.Status.Active != 2 || j.Status.StartTime == nil {
		t.Fatalf("after first sync: %d pods, status %+v", len(pods), j.Status)
	}
	p := pods[0]
	ref := metav1.GetControllerOf(&p)
	if ref == nil || ref.Kind != "Job" || ref.UID != j.UID || !slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) ||
		p.Labels[batchv1.JobNameLabel] != "j" || p.Labels["controller-uid"] != string(j.UID) || !strings.HasPrefix(p.Name, "j-") {
		t.Errorf("pod %s: ownerRef %+v finalizers %v labels %v", p.Name, ref, p.Finalizers, p.Labels)
	}
	if ev := f.events(); len(ev) != 2 || !strings.HasPrefix(ev[0], "Normal SuccessfulCreate Created pod: j-") {
		t.Errorf("events %q", ev)
	}

	f.finish(pods[0].Name, 0)
	f.finish(pods[1].Name, 0)
	j = f.sync("j")
	if j.Status.Succeeded != 2 || j.Status.Active != 1 || len(j.Status.UncountedTerminatedPods.Succeeded) != 0 {
		t.Fatalf("after two successes: %+v", j.Status)
	}
	for _, p := range f.pods()[:2] {
		if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
			t.Errorf("counted pod %s still has the tracking finalizer", p.Name)
		}
	}
	// A stale cache must not count them again.
	j = f.sync("j")
	if j.Status.Succeeded != 2 {
		t.Fatalf("recounted: succeeded %d", j.Status.Succeeded)
	}

	last := f.activePods()
	if len(last) != 1 {
		t.Fatalf("%d active pods, want 1", len(last))
	}
	f.now = f.now.Add(time.Minute)
	f.finish(last[0].Name, 0)
	f.events()
	j = f.sync("j")
	if j.Status.Succeeded != 3 || j.Status.Active != 0 || j.Status.CompletionTime == nil || !j.Status.CompletionTime.Time.Equal(f.now) {
		t.Fatalf("not completed: %+v", j.Status)
	}
	scm, done := condition(j, batchv1.JobSuccessCriteriaMet), condition(j, batchv1.JobComplete)
	if scm == nil || done == nil || done.Reason != batchv1.JobReasonCompletionsReached || scm.Status != corev1.ConditionTrue {
		t.Errorf("conditions %+v", j.Status.Conditions)
	}
	if ev := f.events(); !slices.Contains(ev, "Normal Completed Job completed") {
		t.Errorf("events %q", ev)
	}
	if len(f.pods()) != 3 {
		t.Errorf("%d pods after completion, want 3", len(f.pods()))
	}
}

func TestBackoffLimitExceeded(t *testing.T) {
	f := newFixture(t, newJob("j", func(j *batchv1.Job) { j.Spec.BackoffLimit = i32(1) }))
	f.sync("j")
	f.finish(f.pods()[0].Name, 1)
	j := f.sync("j")
	if j.Status.Failed != 1 || j.Status.Active != 0 || len(f.activePods()) != 0 {
		t.Fatalf("after first failure: %+v, %d active pods (want none during back-off)", j.Status, len(f.activePods()))
	}
	f.now = f.now.Add(5 * time.Second)
	if f.sync("j"); len(f.activePods()) != 0 {
		t.Fatal("pod recreated 5s after a failure; back-off is 10s")
	}
	f.now = f.now.Add(6 * time.Second)
	if f.sync("j"); len(f.activePods()) != 1 {
		t.Fatalf("%d active pods after the back-off, want 1", len(f.activePods()))
	}
	f.events()
	f.finish(f.activePods()[0].Name, 1)
	j = f.sync("j")
	ft, failed := condition(j, batchv1.JobFailureTarget), condition(j, batchv1.JobFailed)
	if j.Status.Failed != 2 || ft == nil || failed == nil || failed.Reason != batchv1.JobReasonBackoffLimitExceeded ||
		failed.Message != "Job has reached the specified backoff limit" {
		t.Fatalf("status %+v", j.Status)
	}
	if j.Status.CompletionTime != nil {
		t.Error("failed job has a completionTime")
	}
	if ev := f.events(); !slices.Contains(ev, "Warning BackoffLimitExceeded Job has reached the specified backoff limit") {
		t.Errorf("events %q", ev)
	}
	// Finished: nothing more happens.
	f.now = f.now.Add(time.Hour)
	if f.sync("j"); len(f.pods()) != 2 {
		t.Errorf("%d pods after failure, want 2", len(f.pods()))
	}
}

func TestBackoffDoubles(t *testing.T) {
	at := time.Unix(1000, 0)
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{0, 0}, {1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {6, 320 * time.Second}, {7, 6 * time.Minute}, {30, 6 * time.Minute}} {
		if got := (backoffRecord{failures: tc.failures, lastFailure: at}).remaining(at); got != tc.want {
			t.Errorf("%d failures: back-off %v, want %v", tc.failures, got, tc.want)
		}
	}
}

func TestIndexed(t *testing.T) {
	f := newFixture(t, newJob("idx", func(j *batchv1.Job) {
		m := batchv1.IndexedCompletion
		j.Spec.CompletionMode, j.Spec.Completions, j.Spec.Parallelism = &m, i32(3), i32(3)
	}))
	f.sync("idx")
	byIndex := map[string]corev1.Pod{}
	for _, p := range f.pods() {
		ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		if p.Labels[batchv1.JobCompletionIndexAnnotation] != ix || p.Spec.Hostname != "idx-"+ix || !strings.HasPrefix(p.Name, "idx-"+ix+"-") ||
			!hasEnv(p.Spec.Containers[0].Env, "JOB_COMPLETION_INDEX") {
			t.Errorf("pod %s: index %q labels %v hostname %q", p.Name, ix, p.Labels, p.Spec.Hostname)
		}
		byIndex[ix] = p
	}
	if len(byIndex) != 3 {
		t.Fatalf("indexes %v", byIndex)
	}
	f.finish(byIndex["0"].Name, 0)
	f.finish(byIndex["2"].Name, 0)
	j := f.sync("idx")
	if j.Status.CompletedIndexes != "0,2" || j.Status.Succeeded != 2 {
		t.Fatalf("completedIndexes %q succeeded %d", j.Status.CompletedIndexes, j.Status.Succeeded)
	}
	// Index 1 fails: it is recreated with the same index after back-off.
	f.finish(byIndex["1"].Name, 3)
	f.sync("idx")
	f.now = f.now.Add(11 * time.Second)
	f.sync("idx")
	act := f.activePods()
	if len(act) != 1 || act[0].Annotations[batchv1.JobCompletionIndexAnnotation] != "1" {
		t.Fatalf("active after failure of index 1: %v", act)
	}
	f.finish(act[0].Name, 0)
	j = f.sync("idx")
	if j.Status.CompletedIndexes != "0-2" || j.Status.Succeeded != 3 || j.Status.Failed != 1 || condition(j, batchv1.JobComplete) == nil {
		t.Fatalf("status %+v", j.Status)
	}
}

func TestIntervals(t *testing.T) {
	for _, tc := range []struct {
		idx  []int
		want string
	}{{nil, ""}, {[]int{0}, "0"}, {[]int{1, 0}, "0,1"}, {[]int{2, 1, 0}, "0-2"}, {[]int{1, 3, 4, 5, 7}, "1,3-5,7"}, {[]int{5, 5, 6}, "5,6"}} {
		iv := intervals(nil).with(tc.idx)
		if got := iv.String(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.idx, got, tc.want)
		}
		if back := parseIntervals(tc.want, 100).String(); back != tc.want {
			t.Errorf("round trip of %q: %q", tc.want, back)
		}
	}
	if got := parseIntervals("1,3-5,9", 5).String(); got != "1,3,4" {
		t.Errorf("indexes beyond completions kept: %q", got)
	}
}

func TestPodFailurePolicy(t *testing.T) {
	rules := []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{7}}},
		{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{42, 7}}},
	}
	for _, tc := range []struct {
		name       string
		exit       int32
		wantFailed int32
		wantReason string
	}{
		{"FailJob", 42, 1, batchv1.JobReasonPodFailurePolicy},
		{"Ignore", 7, 0, ""},
		{"Count", 1, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newJob("p", func(j *batchv1.Job) { j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: rules} }))
			f.sync("p")
			f.finish(f.pods()[0].Name, tc.exit)
			j := f.sync("p")
			if j.Status.Failed != tc.wantFailed {
				t.Errorf("failed %d, want %d", j.Status.Failed, tc.wantFailed)
			}
			c := condition(j, batchv1.JobFailed)
			if tc.wantReason == "" {
				if c != nil {
					t.Errorf("job failed: %+v", c)
				}
				return
			}
			if c == nil || c.Reason != tc.wantReason || !strings.Contains(c.Message, "failed with exit code 42 matching FailJob rule at index 0") ||
				condition(j, batchv1.JobFailureTarget) == nil {
				t.Errorf("conditions %+v", j.Status.Conditions)
			}
		})
	}
}

func TestPodFailurePolicyOnConditions(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns"}, Status: corev1.PodStatus{Phase: corev1.PodFailed,
		Conditions: []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}}}
	pfp := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{Action: batchv1.PodFailurePolicyActionIgnore,
		OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}}}}
	if msg, count, action := matchFailurePolicy(pfp, p); msg != nil || count || action == nil || *action != batchv1.PodFailurePolicyActionIgnore {
		t.Errorf("got %v %v %v", msg, count, action)
	}
}

func TestActiveDeadline(t *testing.T) {
	f := newFixture(t, newJob("d", func(j *batchv1.Job) {
		j.Spec.ActiveDeadlineSeconds = i64(30)
		j.Spec.Parallelism = i32(2)
		j.Spec.Completions = i32(4)
	}))
	f.sync("d")
	if len(f.activePods()) != 2 {
		t.Fatalf("%d pods", len(f.activePods()))
	}
	f.now = f.now.Add(31 * time.Second)
	j := f.sync("d")
	if len(f.pods()) != 0 || condition(j, batchv1.JobFailureTarget) == nil {
		t.Fatalf("pods %d, status %+v", len(f.pods()), j.Status)
	}
	j = f.sync("d")
	c := condition(j, batchv1.JobFailed)
	if c == nil || c.Reason != batchv1.JobReasonDeadlineExceeded || j.Status.Failed != 2 || j.Status.Active != 0 {
		t.Fatalf("status %+v", j.Status)
	}
}

func TestSuspendAndResume(t *testing.T) {
	f := newFixture(t, newJob("s", func(j *batchv1.Job) { t := true; j.Spec.Suspend = &t }))
	j := f.sync("s")
	c := condition(j, batchv1.JobSuspended)
	if len(f.pods()) != 0 || c == nil || c.Status != corev1.ConditionTrue || c.Reason != "JobSuspended" || j.Status.StartTime != nil {
		t.Fatalf("suspended job: pods %d status %+v", len(f.pods()), j.Status)
	}
	if ev := f.events(); !slices.Contains(ev, "Normal Suspended Job suspended") {
		t.Errorf("events %q", ev)
	}
	resume := func(suspend bool) {
		j.Spec.Suspend = &suspend
		var err error
		if j, err = f.cs.BatchV1().Jobs("ns").Update(context.Background(), j, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.now = f.now.Add(time.Minute)
	resume(false)
	j = f.sync("s")
	c = condition(j, batchv1.JobSuspended)
	if len(f.activePods()) != 1 || c.Status != corev1.ConditionFalse || c.Reason != "JobResumed" || !j.Status.StartTime.Time.Equal(f.now) {
		t.Fatalf("resumed job: pods %d status %+v", len(f.activePods()), j.Status)
	}
	resume(true)
	j = f.sync("s")
	if len(f.pods()) != 0 || j.Status.Failed != 0 || j.Status.Active != 0 || condition(j, batchv1.JobSuspended).Status != corev1.ConditionTrue {
		t.Fatalf("re-suspended: pods %d status %+v", len(f.pods()), j.Status)
	}
}

func TestWorkQueueJobCompletesWhenAllFinish(t *testing.T) {
	f := newFixture(t, newJob("w", func(j *batchv1.Job) { j.Spec.Completions = nil; j.Spec.Parallelism = i32(2) }))
	f.sync("w")
	pods := f.activePods()
	f.finish(pods[0].Name, 0)
	j := f.sync("w")
	if len(f.activePods()) != 1 || condition(j, batchv1.JobComplete) != nil {
		t.Fatalf("one success of a work-queue job: active %d, %+v", len(f.activePods()), j.Status)
	}
	f.finish(pods[1].Name, 0)
	if j = f.sync("w"); condition(j, batchv1.JobComplete) == nil || j.Status.Succeeded != 2 {
		t.Fatalf("status %+v", j.Status)
	}
}

func TestOrphanPodReleased(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "ns", UID: "o", Finalizers: []string{batchv1.JobTrackingFinalizer},
		OwnerReferences: []metav1.OwnerReference{*controller.NewControllerRef(newJob("gone"), kind)}}}
	f := newFixture(t, pod)
	f.refresh()
	if err := f.c.syncOrphanPod(context.Background(), "ns/o"); err != nil {
		t.Fatal(err)
	}
	if p := f.pods()[0]; len(p.Finalizers) != 0 {
		t.Errorf("finalizers %v", p.Finalizers)
	}
}
