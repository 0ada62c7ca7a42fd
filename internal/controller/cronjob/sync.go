package cronjob

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/controller"
)

// nextScheduleDelta is added to the next schedule time so the requeued
// sync does not run a hair early.
const nextScheduleDelta = 100 * time.Millisecond

// tooManyMissed is upstream's threshold for the TooManyMissedTimes warning.
const tooManyMissed = 100

// syncCronJob updates cj's status in place from its Jobs and creates the
// Job that is due, if any. It returns when to sync again and whether the
// status changed.
func (c *Controller) syncCronJob(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) (*time.Duration, bool, error) {
	now := c.now()
	changed := false
	children := map[types.UID]bool{}
	for _, j := range jobs {
		children[j.UID] = true
		found := inActive(cj, j.UID)
		cond, finished := finishedCondition(j)
		switch {
		case !found && !finished:
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
		case found && finished:
			removeActive(cj, j.UID)
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %v", j.Name, cond)
			changed = true
			if cond == batchv1.JobComplete && j.Status.CompletionTime != nil &&
				(cj.Status.LastSuccessfulTime == nil || cj.Status.LastSuccessfulTime.Before(j.Status.CompletionTime)) {
				cj.Status.LastSuccessfulTime = j.Status.CompletionTime.DeepCopy()
			}
		}
	}
	// An active Job the cache does not show may just be new: ask the API.
	for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
		if children[ref.UID] {
			continue
		}
		j, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) || (err == nil && j.UID != ref.UID):
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "MissingJob", "Active job went missing: %v", ref.Name)
			removeActive(cj, ref.UID)
			changed = true
		case err != nil:
			return nil, changed, err
		}
	}
	if cj.DeletionTimestamp != nil {
		return nil, changed, nil
	}
	loc := c.local
	if tz := cj.Spec.TimeZone; tz != nil {
		var err error
		if loc, err = time.LoadLocation(*tz); err != nil {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %s", *tz, err)
			return nil, changed, nil
		}
	}
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		return nil, changed, nil
	}
	sched, err := ParseSchedule(cj.Spec.Schedule, loc)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return nil, changed, nil
	}
	scheduled, missed, err := mostRecentScheduleTime(earliest(cj, now, true), now, sched)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "InvalidSchedule", "invalid schedule: %s : %s", cj.Spec.Schedule, err)
		return nil, changed, nil
	}
	if missed > tooManyMissed {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes",
			"too many missed start times: %d. Set or decrease .spec.startingDeadlineSeconds or check clock skew", missed)
	}
	requeue := nextScheduleDuration(cj, now, sched)
	if scheduled == nil {
		return requeue, changed, nil
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && scheduled.Add(time.Duration(*d)*time.Second).Before(now) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", scheduled.UTC().Format(time.RFC1123Z))
		return requeue, changed, nil
	}
	name := JobName(cj, *scheduled)
	if inActiveByName(cj, name) || (cj.Status.LastScheduleTime != nil && cj.Status.LastScheduleTime.Time.Equal(*scheduled)) {
		return requeue, changed, nil
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent && len(cj.Status.Active) > 0 {
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
		return requeue, changed, nil
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ReplaceConcurrent {
		for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
			if err := c.deleteJob(ctx, cj, ref.Namespace, ref.Name, ref.UID); err != nil {
				return nil, changed, err
			}
			changed = true
		}
	}
	job, err := jobFromTemplate(cj, *scheduled)
	if err != nil {
		return nil, changed, err
	}
	created, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, job, metav1.CreateOptions{})
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, changed, err
	case apierrors.IsAlreadyExists(err):
		// Created by an earlier sync whose status update was lost: take
		// it into the active list if it is ours.
		existing, gerr := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return nil, changed, gerr
		}
		ref := metav1.GetControllerOfNoCopy(existing)
		if ref == nil || ref.UID != cj.UID {
			return nil, changed, err
		}
		if _, finished := finishedCondition(existing); !finished && !inActive(cj, existing.UID) {
			cj.Status.Active = append(cj.Status.Active, jobRef(existing))
		}
		created = existing
	case err != nil:
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return nil, changed, err
	default:
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", created.Name)
		cj.Status.Active = append(cj.Status.Active, jobRef(created))
	}
	t := metav1.NewTime(*scheduled)
	cj.Status.LastScheduleTime = &t
	return requeue, true, nil
}

// JobName is the deterministic name of the Job for one schedule time.
func JobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}

func jobFromTemplate(cj *batchv1.CronJob, scheduled time.Time) (*batchv1.Job, error) {
	tz := ""
	if cj.Spec.TimeZone != nil {
		tz = *cj.Spec.TimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, err
	}
	tmpl := cj.Spec.JobTemplate
	annotations := map[string]string{}
	for k, v := range tmpl.Annotations {
		annotations[k] = v
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduled.In(loc).Format(time.RFC3339)
	var lbls map[string]string
	if tmpl.Labels != nil {
		lbls = make(map[string]string, len(tmpl.Labels))
		for k, v := range tmpl.Labels {
			lbls[k] = v
		}
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: JobName(cj, scheduled), Namespace: cj.Namespace, Labels: lbls, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{*controller.NewControllerRef(cj, kind)},
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}, nil
}

func jobRef(j *batchv1.Job) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Job", APIVersion: batchv1.SchemeGroupVersion.String(), Namespace: j.Namespace, Name: j.Name,
		UID: j.UID, ResourceVersion: j.ResourceVersion}
}

// deleteJob deletes one of cj's Jobs (Background propagation) and drops it
// from the active list.
func (c *Controller) deleteJob(ctx context.Context, cj *batchv1.CronJob, ns, name string, uid types.UID) error {
	bg := metav1.DeletePropagationBackground
	err := c.client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Deleted job: %v", err)
		return fmt.Errorf("delete job %s/%s: %w", ns, name, err)
	}
	if err == nil {
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", name)
	}
	removeActive(cj, uid)
	return nil
}

// cleanupFinished deletes the oldest finished Jobs beyond the history
// limits; it reports whether cj's status changed.
func (c *Controller) cleanupFinished(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) bool {
	var succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		if j.DeletionTimestamp != nil {
			continue
		}
		switch cond, _ := finishedCondition(j); cond {
		case batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	changed := false
	prune := func(js []*batchv1.Job, limit *int32) {
		if limit == nil || len(js) <= int(*limit) {
			return
		}
		sort.SliceStable(js, func(a, b int) bool { return startedBefore(js[a], js[b]) })
		for _, j := range js[:len(js)-int(*limit)] {
			before := len(cj.Status.Active)
			if err := c.deleteJob(ctx, cj, j.Namespace, j.Name, j.UID); err == nil && len(cj.Status.Active) != before {
				changed = true
			}
		}
	}
	prune(succeeded, cj.Spec.SuccessfulJobsHistoryLimit)
	prune(failed, cj.Spec.FailedJobsHistoryLimit)
	return changed
}

// startedBefore orders Jobs by start time; unstarted Jobs last, ties by name.
func startedBefore(a, b *batchv1.Job) bool {
	sa, sb := a.Status.StartTime, b.Status.StartTime
	switch {
	case sa == nil && sb != nil:
		return false
	case sa != nil && sb == nil:
		return true
	case sa == nil && sb == nil, sa.Equal(sb):
		return a.Name < b.Name
	}
	return sa.Before(sb)
}

func finishedCondition(j *batchv1.Job) (batchv1.JobConditionType, bool) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type, true
		}
	}
	return "", false
}

func inActive(cj *batchv1.CronJob, uid types.UID) bool {
	for _, r := range cj.Status.Active {
		if r.UID == uid {
			return true
		}
	}
	return false
}

func inActiveByName(cj *batchv1.CronJob, name string) bool {
	for _, r := range cj.Status.Active {
		if r.Name == name && r.Namespace == cj.Namespace {
			return true
		}
	}
	return false
}

func removeActive(cj *batchv1.CronJob, uid types.UID) {
	var keep []corev1.ObjectReference
	for _, r := range cj.Status.Active {
		if r.UID != uid {
			keep = append(keep, r)
		}
	}
	cj.Status.Active = keep
}

// earliest is the time after which schedule times are still due: the last
// schedule time (or creation), moved up to now-startingDeadlineSeconds
// when withDeadline is set.
func earliest(cj *batchv1.CronJob, now time.Time, withDeadline bool) time.Time {
	t := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		t = cj.Status.LastScheduleTime.Time
	}
	if d := cj.Spec.StartingDeadlineSeconds; withDeadline && d != nil {
		if dl := now.Add(-time.Duration(*d) * time.Second); dl.After(t) {
			t = dl
		}
	}
	return t
}

// maxExactSteps bounds the walk over missed schedule times; beyond it the
// count is estimated from the interval, as upstream does.
const maxExactSteps = 100000

// mostRecentScheduleTime returns the latest schedule time in (from, now]
// (nil if none) and how many schedule times fell in that window.
func mostRecentScheduleTime(from, now time.Time, s Schedule) (*time.Time, int64, error) {
	t1 := s.Next(from)
	if t1.IsZero() {
		return nil, 0, errors.New("the schedule never fires")
	}
	if now.Before(t1) {
		return nil, 0, nil
	}
	t2 := s.Next(t1)
	if now.Before(t2) {
		return &t1, 1, nil
	}
	if t2.Sub(t1) < time.Second {
		return nil, 0, errors.New("time difference between two schedules is less than 1 second")
	}
	recent, n := t1, int64(1)
	for t := t2; !t.After(now); t = s.Next(t) {
		recent, n = t, n+1
		if n > maxExactSteps {
			// Jump close to now and walk the rest.
			step := t2.Sub(t1)
			n += int64(now.Sub(t) / step)
			start := now.Add(-2 * step)
			if start.Before(t) {
				start = t
			}
			for u := s.Next(start); !u.After(now); u = s.Next(u) {
				recent = u
			}
			break
		}
	}
	return &recent, n, nil
}

// nextScheduleDuration is how long until the first schedule time after the
// most recent one (or after creation).
func nextScheduleDuration(cj *batchv1.CronJob, now time.Time, s Schedule) *time.Duration {
	base := earliest(cj, now, false)
	if recent, _, err := mostRecentScheduleTime(base, now, s); err != nil {
		return nil
	} else if recent != nil {
		base = *recent
	}
	next := s.Next(base)
	if next.IsZero() {
		return nil
	}
	d := next.Add(nextScheduleDelta).Sub(now)
	return &d
}
