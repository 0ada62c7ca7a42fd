package cronjob

import (
	"context"
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

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t   *testing.T
	cs  *fake.Clientset
	inf informers.SharedInformerFactory
	c   *Controller
	rec *record.FakeRecorder
	now time.Time
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{t: t, cs: fake.NewClientset(objs...), now: t0}
	f.cs.PrependReactor("create", "jobs", func(a clienttesting.Action) (bool, runtime.Object, error) {
		j := a.(clienttesting.CreateAction).GetObject().(*batchv1.Job)
		j.UID = types.UID("uid-" + j.Name)
		j.CreationTimestamp = metav1.NewTime(f.now)
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
	c.local = time.UTC
	f.c = c
	t.Cleanup(c.queue.ShutDown)
	return f
}

func (f *fixture) sync() (*batchv1.CronJob, *time.Duration) {
	f.t.Helper()
	ctx := context.Background()
	jobs, _ := f.cs.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	var objs []any
	for i := range jobs.Items {
		objs = append(objs, &jobs.Items[i])
	}
	f.inf.Batch().V1().Jobs().Informer().GetIndexer().Replace(objs, "")
	cjs, _ := f.cs.BatchV1().CronJobs("").List(ctx, metav1.ListOptions{})
	objs = nil
	for i := range cjs.Items {
		objs = append(objs, &cjs.Items[i])
	}
	f.inf.Batch().V1().CronJobs().Informer().GetIndexer().Replace(objs, "")
	requeue, err := f.c.sync(ctx, "ns/cj")
	if err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	cj, err := f.cs.BatchV1().CronJobs("ns").Get(ctx, "cj", metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return cj, requeue
}

func (f *fixture) jobs() []batchv1.Job {
	l, _ := f.cs.BatchV1().Jobs("ns").List(context.Background(), metav1.ListOptions{})
	slices.SortFunc(l.Items, func(a, b batchv1.Job) int { return strings.Compare(a.Name, b.Name) })
	return l.Items
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

func (f *fixture) finishJob(name string, cond batchv1.JobConditionType) {
	f.t.Helper()
	ctx := context.Background()
	j, err := f.cs.BatchV1().Jobs("ns").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	now := metav1.NewTime(f.now)
	j.Status.StartTime = &j.CreationTimestamp
	j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, LastTransitionTime: now}}
	if cond == batchv1.JobComplete {
		j.Status.CompletionTime = &now
	}
	if _, err := f.cs.BatchV1().Jobs("ns").UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func i32(v int32) *int32 { return &v }
func i64(v int64) *int64 { return &v }

func newCronJob(schedule string, mutate ...func(*batchv1.CronJob)) *batchv1.CronJob {
	f := false
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "cj", Namespace: "ns", UID: "cj-uid", CreationTimestamp: metav1.NewTime(t0)},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule, ConcurrencyPolicy: batchv1.AllowConcurrent, Suspend: &f,
			SuccessfulJobsHistoryLimit: i32(3), FailedJobsHistoryLimit: i32(1),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}, Annotations: map[string]string{"note": "y"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
			},
		},
	}
	for _, m := range mutate {
		m(cj)
	}
	return cj
}

func jobNameAt(t time.Time) string {
	return JobName(&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "cj"}}, t)
}

func TestCreatesJobAtScheduleTime(t *testing.T) {
	f := newFixture(t, newCronJob("*/1 * * * *"))
	f.now = t0.Add(30 * time.Second)
	cj, requeue := f.sync()
	if len(f.jobs()) != 0 || requeue == nil || *requeue != 30*time.Second+nextScheduleDelta {
		t.Fatalf("before the first schedule time: %d jobs, requeue %v", len(f.jobs()), requeue)
	}
	f.now = t0.Add(65 * time.Second)
	cj, requeue = f.sync()
	jobs := f.jobs()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	want := "cj-29454481" // 12:01 UTC in minutes since the epoch
	if j.Name != want || j.Name != jobNameAt(t0.Add(time.Minute)) {
		t.Errorf("job name %s, want %s", j.Name, want)
	}
	ref := metav1.GetControllerOf(&j)
	if ref == nil || ref.Kind != "CronJob" || ref.UID != cj.UID || j.Labels["app"] != "x" || j.Annotations["note"] != "y" ||
		j.Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-01-01T12:01:00Z" {
		t.Errorf("job meta: ref %+v labels %v annotations %v", ref, j.Labels, j.Annotations)
	}
	if len(cj.Status.Active) != 1 || cj.Status.Active[0].Name != j.Name || !cj.Status.LastScheduleTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("status %+v", cj.Status)
	}
	if *requeue != 55*time.Second+nextScheduleDelta {
		t.Errorf("requeue %v", *requeue)
	}
	if ev := f.events(); !slices.Equal(ev, []string{"Normal SuccessfulCreate Created job " + j.Name}) {
		t.Errorf("events %q", ev)
	}
	// The same minute again: nothing new.
	if f.sync(); len(f.jobs()) != 1 {
		t.Errorf("%d jobs after a second sync", len(f.jobs()))
	}

	f.now = t0.Add(90 * time.Second)
	f.finishJob(j.Name, batchv1.JobComplete)
	cj, _ = f.sync()
	if len(cj.Status.Active) != 0 || cj.Status.LastSuccessfulTime == nil || !cj.Status.LastSuccessfulTime.Time.Equal(f.now) {
		t.Errorf("after completion: %+v", cj.Status)
	}
	if ev := f.events(); !slices.Contains(ev, "Normal SawCompletedJob Saw completed job: "+j.Name+", condition: Complete") {
		t.Errorf("events %q", ev)
	}
}

func TestConcurrencyPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy   batchv1.ConcurrencyPolicy
		wantJobs []time.Duration // schedule times of the jobs left
		event    string
	}{
		{batchv1.AllowConcurrent, []time.Duration{time.Minute, 2 * time.Minute}, "Normal SuccessfulCreate"},
		{batchv1.ForbidConcurrent, []time.Duration{time.Minute}, "Normal JobAlreadyActive Not starting job because prior execution is running and concurrency policy is Forbid"},
		{batchv1.ReplaceConcurrent, []time.Duration{2 * time.Minute}, "Normal SuccessfulDelete Deleted job " + jobNameAt(t0.Add(time.Minute))},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			f := newFixture(t, newCronJob("* * * * *", func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = tc.policy }))
			f.now = t0.Add(61 * time.Second)
			f.sync()
			f.now = t0.Add(121 * time.Second)
			f.events()
			cj, _ := f.sync()
			var names []string
			for _, j := range f.jobs() {
				names = append(names, j.Name)
			}
			var want []string
			for _, d := range tc.wantJobs {
				want = append(want, jobNameAt(t0.Add(d)))
			}
			if !slices.Equal(names, want) {
				t.Errorf("jobs %v, want %v", names, want)
			}
			if len(cj.Status.Active) != len(want) {
				t.Errorf("active %v", cj.Status.Active)
			}
			ev := f.events()
			if !slices.ContainsFunc(ev, func(e string) bool { return strings.HasPrefix(e, tc.event) }) {
				t.Errorf("events %q lack %q", ev, tc.event)
			}
		})
	}
}

func TestStartingDeadline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline *int64
		wantJob  bool
		event    string
	}{
		{"too late", i64(10), false, ""}, // skipped silently, as upstream,
		{"within deadline", i64(60), true, ""},
		{"no deadline, many missed", nil, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newCronJob("*/5 * * * *", func(cj *batchv1.CronJob) { cj.Spec.StartingDeadlineSeconds = tc.deadline }))
			f.now = t0.Add(10*time.Minute + 30*time.Second)
			cj, requeue := f.sync()
			jobs := f.jobs()
			if tc.wantJob != (len(jobs) == 1) || len(jobs) > 1 {
				t.Fatalf("%d jobs", len(jobs))
			}
			if tc.wantJob && (jobs[0].Name != jobNameAt(t0.Add(10*time.Minute)) || !cj.Status.LastScheduleTime.Time.Equal(t0.Add(10*time.Minute))) {
				t.Errorf("job %s, lastScheduleTime %v: want the most recent time only", jobs[0].Name, cj.Status.LastScheduleTime)
			}
			if requeue == nil || *requeue != 4*time.Minute+30*time.Second+nextScheduleDelta {
				t.Errorf("requeue %v", requeue)
			}
			if ev := f.events(); tc.event != "" && !slices.Contains(ev, tc.event) {
				t.Errorf("events %q", ev)
			}
		})
	}
}

func TestTooManyMissed(t *testing.T) {
	f := newFixture(t, newCronJob("* * * * *"))
	f.now = t0.Add(3*time.Hour + time.Second)
	f.sync()
	if ev := f.events(); !slices.Contains(ev, "Warning TooManyMissedTimes too many missed start times: 180. Set or decrease .spec.startingDeadlineSeconds or check clock skew") {
		t.Errorf("events %q", ev)
	}
	if jobs := f.jobs(); len(jobs) != 1 || jobs[0].Name != jobNameAt(t0.Add(3*time.Hour)) {
		t.Errorf("jobs %v", jobs)
	}
}

func TestSuspended(t *testing.T) {
	f := newFixture(t, newCronJob("* * * * *", func(cj *batchv1.CronJob) { s := true; cj.Spec.Suspend = &s }))
	f.now = t0.Add(5 * time.Minute)
	if _, requeue := f.sync(); len(f.jobs()) != 0 || requeue != nil {
		t.Errorf("suspended: %d jobs, requeue %v", len(f.jobs()), requeue)
	}
}

func TestTimeZone(t *testing.T) {
	if _, err := time.LoadLocation("America/New_York"); err != nil {
		t.Skip("no tzdata")
	}
	f := newFixture(t, newCronJob("0 9 * * *", func(cj *batchv1.CronJob) { tz := "America/New_York"; cj.Spec.TimeZone = &tz }))
	f.now = time.Date(2026, 1, 1, 14, 0, 30, 0, time.UTC)
	f.sync()
	jobs := f.jobs()
	if len(jobs) != 1 || jobs[0].Annotations[batchv1.CronJobScheduledTimestampAnnotation] != "2026-01-01T09:00:00-05:00" {
		t.Fatalf("jobs %+v", jobs)
	}
	f2 := newFixture(t, newCronJob("0 9 * * *", func(cj *batchv1.CronJob) { tz := "Mars/Olympus"; cj.Spec.TimeZone = &tz }))
	f2.now = f.now
	f2.sync()
	if ev := f2.events(); len(f2.jobs()) != 0 || len(ev) != 1 || !strings.HasPrefix(ev[0], `Warning UnknownTimeZone invalid timeZone: "Mars/Olympus"`) {
		t.Errorf("unknown zone: jobs %d events %q", len(f2.jobs()), ev)
	}
}

func TestHistoryLimits(t *testing.T) {
	f := newFixture(t, newCronJob("* * * * *"))
	for i := 1; i <= 7; i++ {
		f.now = t0.Add(time.Duration(i)*time.Minute + time.Second)
		f.sync()
		cond := batchv1.JobComplete
		if i%2 == 0 {
			cond = batchv1.JobFailed
		}
		f.finishJob(jobNameAt(t0.Add(time.Duration(i)*time.Minute)), cond)
	}
	f.sync()
	var names []string
	for _, j := range f.jobs() {
		names = append(names, j.Name)
	}
	// Complete: 1,3,5,7 → keep 3,5,7. Failed: 2,4,6 → keep 6.
	var want []string
	for _, i := range []int{3, 5, 6, 7} {
		want = append(want, jobNameAt(t0.Add(time.Duration(i)*time.Minute)))
	}
	if !slices.Equal(names, want) {
		t.Errorf("jobs %v, want %v", names, want)
	}
}
