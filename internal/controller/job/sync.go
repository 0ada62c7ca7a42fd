package job

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
)

// state is what one sync of a Job knows and decides.
type state struct {
	key  string
	job  *batchv1.Job // a copy; its status is the status to write
	pods []*corev1.Pod
	now  time.Time

	active      []*corev1.Pod
	terminating int32
	ready       int32
	succeeded   int32
	uncounted   uncounted
	// prevIndexes are the completed indexes in status; indexes adds those
	// of succeeded pods seen now (Indexed Jobs only).
	prevIndexes, indexes intervals
	// finished is the condition the Job moves toward, or nil.
	finished *batchv1.JobCondition
	backoff  backoffRecord
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	shared, err := c.jobs.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(key)
		c.fin.forget(key)
		c.backoff.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if m := shared.Spec.ManagedBy; m != nil && *m != ManagedBy {
		return nil
	}
	pods, err := c.claimPods(ctx, shared)
	if err != nil {
		return err
	}
	if isFinished(shared) {
		c.backoff.forget(key)
		return c.releaseAll(ctx, pods)
	}
	satisfied := c.exp.Satisfied(key)
	s := &state{key: key, job: shared.DeepCopy(), pods: pods, now: c.now(), uncounted: newUncounted(shared.Status.UncountedTerminatedPods)}
	job := s.job

	var newSucceeded, newFailed []*corev1.Pod
	for _, p := range pods {
		switch {
		case controller.IsPodActive(p):
			s.active = append(s.active, p)
			if controller.IsPodReady(p) {
				s.ready++
			}
		case controller.IsPodTerminating(p):
			s.terminating++
		}
		if !hasTrackingFinalizer(p) || c.fin.has(key, p.UID) || s.uncounted.has(p.UID) {
			continue
		}
		if p.Status.Phase == corev1.PodSucceeded {
			newSucceeded = append(newSucceeded, p)
		} else if isPodFailed(p, job) {
			newFailed = append(newFailed, p)
		}
	}
	s.backoff = nextBackoff(c.backoff.get(key), newSucceeded, newFailed, s.now)
	s.succeeded = job.Status.Succeeded + int32(len(newSucceeded)+len(s.uncounted.succeeded))
	failed := job.Status.Failed + int32(len(s.uncounted.failed))
	for _, p := range newFailed {
		if _, count, _ := matchFailurePolicy(job.Spec.PodFailurePolicy, p); count {
			failed++
		}
	}

	if job.Status.StartTime == nil && !isSuspended(job) {
		t := metav1.NewTime(s.now)
		job.Status.StartTime = &t
	}

	if ft := findCondition(job, batchv1.JobFailureTarget); ft != nil {
		s.finished = newCondition(batchv1.JobFailed, ft.Reason, ft.Message, s.now)
	} else if msg := failJobMessage(job, pods); msg != nil {
		s.finished = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonPodFailurePolicy, *msg, s.now)
	}
	if s.finished == nil {
		switch {
		case failed > backoffLimit(job) || pastBackoffLimitOnFailure(job, pods):
			s.finished = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit", s.now)
		case pastDeadline(job, s.now):
			s.finished = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline", s.now)
		case job.Spec.ActiveDeadlineSeconds != nil && !isSuspended(job):
			left := time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second - s.now.Sub(job.Status.StartTime.Time)
			c.queue.AddAfter(key, left)
		}
	}
	if isIndexed(job) {
		n := int(*job.Spec.Completions)
		s.prevIndexes = parseIntervals(job.Status.CompletedIndexes, n)
		var idx []int
		for _, p := range pods {
			if ix := completionIndex(p); p.Status.Phase == corev1.PodSucceeded && ix != noIndex && ix < n {
				idx = append(idx, ix)
			}
		}
		s.indexes = s.prevIndexes.with(idx)
		s.succeeded = int32(s.indexes.total())
	}
	if scm := findCondition(job, batchv1.JobSuccessCriteriaMet); scm != nil && s.finished == nil {
		s.finished = newCondition(batchv1.JobComplete, scm.Reason, scm.Message, s.now)
	}

	active := int32(len(s.active))
	var manageErr error
	if s.finished != nil && s.finished.Type != batchv1.JobComplete {
		// Failing: stop what runs. The pods keep their finalizer, so they
		// are counted as failed below.
		deleted, deletedReady, err := c.deletePods(ctx, key, job, s.active, false)
		if int(deleted) != len(s.active) || !satisfied {
			s.finished = nil // wait until every pod is accounted for
		}
		active -= deleted
		s.terminating += deleted
		s.ready -= deletedReady
		manageErr = err
	} else if s.finished == nil {
		managed := false
		if satisfied && job.DeletionTimestamp == nil {
			active, manageErr = c.manage(ctx, s)
			managed = true
		}
		complete := false
		if job.Spec.Completions == nil {
			complete = s.succeeded > 0 && active == 0
		} else {
			complete = s.succeeded >= *job.Spec.Completions && active == 0
		}
		switch {
		case complete:
			s.finished = newCondition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods", s.now)
		case managed && isSuspended(job):
			if setCondition(job, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", s.now) {
				c.recorder.Event(job, corev1.EventTypeNormal, "Suspended", "Job suspended")
			}
		case managed:
			if setCondition(job, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", s.now) {
				c.recorder.Event(job, corev1.EventTypeNormal, "Resumed", "Job resumed")
				// activeDeadlineSeconds counts continuous activity.
				t := metav1.NewTime(s.now)
				job.Status.StartTime = &t
			}
		}
	}
	job.Status.Active = active
	job.Status.Ready = &s.ready
	job.Status.Terminating = &s.terminating
	if err := c.track(ctx, shared, s); err != nil {
		return errors.Join(manageErr, err)
	}
	return manageErr
}

// track writes status in the order that makes counting exact: first the
// newly finished pods into uncountedTerminatedPods, then the finalizers
// off those pods, then the UIDs from the uncounted lists into the
// counters, and finally the terminal condition once nothing is uncounted
// or terminating.
func (c *Controller) track(ctx context.Context, orig *batchv1.Job, s *state) error {
	job := s.job
	withFinalizer := map[types.UID]struct{}{}
	var release []*corev1.Pod
	var addSucceeded, addFailed []types.UID
	var addIndexes []int
	failing := s.finished != nil && s.finished.Type != batchv1.JobComplete && s.finished.Type != batchv1.JobSuccessCriteriaMet
	for _, p := range s.pods {
		if !hasTrackingFinalizer(p) || c.fin.has(s.key, p.UID) {
			continue
		}
		withFinalizer[p.UID] = struct{}{}
		podFailed := isPodFailed(p, job)
		if job.DeletionTimestamp == nil && s.finished == nil && p.Status.Phase != corev1.PodSucceeded && !podFailed {
			continue
		}
		release = append(release, p)
		_, inFailed := s.uncounted.failed[p.UID]
		switch {
		case p.Status.Phase == corev1.PodSucceeded && !inFailed:
			if isIndexed(job) {
				if ix := completionIndex(p); ix != noIndex && ix < int(*job.Spec.Completions) && !s.prevIndexes.has(ix) {
					addIndexes = append(addIndexes, ix)
				}
			} else if _, ok := s.uncounted.succeeded[p.UID]; !ok {
				addSucceeded = append(addSucceeded, p.UID)
			}
		case podFailed || failing:
			if inFailed || (isIndexed(job) && (completionIndex(p) == noIndex || completionIndex(p) >= int(*job.Spec.Completions))) {
				break
			}
			if _, count, _ := matchFailurePolicy(job.Spec.PodFailurePolicy, p); count {
				addFailed = append(addFailed, p.UID)
			}
		}
	}
	if job.Status.UncountedTerminatedPods == nil {
		job.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	u := job.Status.UncountedTerminatedPods
	u.Succeeded = append(u.Succeeded, addSucceeded...)
	u.Failed = append(u.Failed, addFailed...)
	if isIndexed(job) {
		idx := s.prevIndexes.with(addIndexes)
		job.Status.CompletedIndexes = idx.String()
		job.Status.Succeeded = int32(idx.total())
	}
	// The interim condition goes in before any finalizer comes off, so a
	// restart cannot forget that the Job is finishing.
	switch {
	case s.finished != nil && s.finished.Type == batchv1.JobFailureTarget:
		job.Status.Conditions = append(job.Status.Conditions, *s.finished)
		s.finished = newCondition(batchv1.JobFailed, s.finished.Reason, s.finished.Message, s.now)
	case s.finished != nil && s.finished.Type == batchv1.JobSuccessCriteriaMet:
		if findCondition(job, batchv1.JobSuccessCriteriaMet) == nil {
			job.Status.Conditions = append(job.Status.Conditions, *s.finished)
		}
		s.finished = newCondition(batchv1.JobComplete, s.finished.Reason, s.finished.Message, s.now)
	}
	written, err := c.updateStatus(ctx, orig, job)
	if err != nil {
		return fmt.Errorf("add uncounted pods to status of job %s: %w", s.key, err)
	}
	// The newly finished pods are recorded now; they will not be new again.
	c.backoff.set(s.key, s.backoff)

	var rmErr error
	for _, p := range release {
		err := c.removeFinalizer(ctx, p)
		if err != nil {
			rmErr = errors.Join(rmErr, err)
			continue
		}
		c.fin.expect(s.key, p.UID)
		delete(withFinalizer, p.UID)
	}
	job = written.DeepCopy()
	moveCounted(&job.Status, withFinalizer)
	finishedNow := false
	if s.finished != nil && len(job.Status.UncountedTerminatedPods.Succeeded)+len(job.Status.UncountedTerminatedPods.Failed) == 0 &&
		s.terminating == 0 && rmErr == nil {
		setCondition(job, s.finished.Type, corev1.ConditionTrue, s.finished.Reason, s.finished.Message, s.now)
		if s.finished.Type == batchv1.JobComplete {
			t := metav1.NewTime(s.now)
			job.Status.CompletionTime = &t
		}
		finishedNow = true
	}
	if _, err := c.updateStatus(ctx, written, job); err != nil {
		return errors.Join(rmErr, fmt.Errorf("count finished pods of job %s: %w", s.key, err))
	}
	if rmErr != nil {
		return rmErr
	}
	if finishedNow {
		if s.finished.Type == batchv1.JobComplete {
			c.recorder.Event(job, corev1.EventTypeNormal, "Completed", "Job completed")
		} else {
			c.recorder.Event(job, corev1.EventTypeWarning, s.finished.Reason, s.finished.Message)
		}
	}
	return nil
}

// manage creates or deletes pods so the active ones approach what the Job
// wants now; it returns the number of active pods after it acted.
func (c *Controller) manage(ctx context.Context, s *state) (int32, error) {
	job := s.job
	active := int32(len(s.active))
	if isSuspended(job) {
		deleted, deletedReady, err := c.deletePods(ctx, s.key, job, s.active, true)
		s.terminating += deleted
		s.ready -= deletedReady
		return active - deleted, err
	}
	parallelism := int32(1)
	if job.Spec.Parallelism != nil {
		parallelism = *job.Spec.Parallelism
	}
	var want int32
	if job.Spec.Completions == nil {
		// Work-queue Job: once one pod succeeded, let the rest finish.
		want = parallelism
		if s.succeeded > 0 {
			want = active
		}
	} else {
		want = max(0, min(*job.Spec.Completions-s.succeeded, parallelism))
	}
	var victims []*corev1.Pod
	kept := s.active
	if isIndexed(job) {
		victims = surplusIndexed(s.active, s.indexes, int(*job.Spec.Completions))
		kept = without(s.active, victims)
	}
	if extra := int32(len(kept)) - want; extra > 0 {
		victims = append(victims, replicaset.PodsToDelete(kept, int(extra))...)
	}
	if len(victims) > 0 {
		if len(victims) > MaxPodCreateDeletePerSync {
			victims = victims[:MaxPodCreateDeletePerSync]
		}
		deleted, deletedReady, err := c.deletePods(ctx, s.key, job, victims, true)
		s.terminating += deleted
		s.ready -= deletedReady
		return active - deleted, err
	}
	var terminating int32
	if onlyReplaceFailed(job) {
		terminating = s.terminating
	}
	diff := want - terminating - active
	if diff <= 0 {
		return active, nil
	}
	if wait := s.backoff.remaining(s.now); wait > 0 {
		c.queue.AddAfter(s.key, wait)
		return active, nil
	}
	diff = min(diff, MaxPodCreateDeletePerSync)
	var indexes []int
	if isIndexed(job) {
		indexes = pendingIndexes(s.indexes, s.active, int(diff), int(*job.Spec.Completions))
		diff = int32(len(indexes))
		if diff == 0 {
			return active, nil
		}
	}
	c.exp.ExpectCreations(s.key, int(diff))
	ref := controller.NewControllerRef(job, kind)
	var next atomic.Int32
	ok, err := controller.SlowStartBatch(int(diff), 1, func() error {
		pod := controller.GetPodFromTemplate(&job.Spec.Template, job, ref)
		pod.Finalizers = append(pod.Finalizers, batchv1.JobTrackingFinalizer)
		if indexes != nil {
			addIndex(pod, job.Name, indexes[next.Add(1)-1])
		}
		out, err := controller.CreatePod(ctx, c.client, pod)
		if err != nil {
			if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", apiMessage(err))
			}
			return err
		}
		c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", out.Name)
		return nil
	})
	for i := ok; i < int(diff); i++ {
		c.exp.CreationObserved(s.key) // never coming
	}
	return active + int32(ok), err
}

// deletePods deletes pods of job, first dropping the tracking finalizer
// when the deletion must not count as a failure (suspend, surplus). It
// returns how many (and how many ready) pods it deleted.
func (c *Controller) deletePods(ctx context.Context, key string, job *batchv1.Job, pods []*corev1.Pod, release bool) (int32, int32, error) {
	if len(pods) == 0 {
		return 0, 0, nil
	}
	uids := make([]types.UID, len(pods))
	for i, p := range pods {
		uids[i] = p.UID
	}
	c.exp.ExpectDeletions(key, uids)
	var deleted, deletedReady atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, len(pods))
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if release && hasTrackingFinalizer(p) {
				if err := c.removeFinalizer(ctx, p); err != nil {
					c.exp.DeletionObserved(key, p.UID)
					errs <- err
					return
				}
				c.fin.expect(key, p.UID)
			}
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil && !apierrors.IsNotFound(err) {
				c.exp.DeletionObserved(key, p.UID)
				c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", apiMessage(err))
				errs <- err
				return
			}
			if err != nil {
				c.exp.DeletionObserved(key, p.UID)
			} else {
				c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
			}
			deleted.Add(1)
			if controller.IsPodReady(p) {
				deletedReady.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return deleted.Load(), deletedReady.Load(), <-errs
}

// releaseAll drops the tracking finalizer from the pods of a finished Job
// (it counted them before it finished).
func (c *Controller) releaseAll(ctx context.Context, pods []*corev1.Pod) error {
	var errs error
	for _, p := range pods {
		if hasTrackingFinalizer(p) {
			errs = errors.Join(errs, c.removeFinalizer(ctx, p))
		}
	}
	return errs
}

// claimPods returns every pod (finished or not) the Job controls, adopting
// matching orphans and releasing owned pods that no longer match.
func (c *Controller) claimPods(ctx context.Context, job *batchv1.Job) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil {
		return nil, nil // validation prevents this
	}
	candidates, err := replicaset.OwnedOrOrphans[*corev1.Pod](c.podIndex, job.Namespace, job.UID)
	if err != nil {
		return nil, err
	}
	claimer := &controller.Claimer{
		Owner: job, Kind: kind, Selector: sel,
		Patch: func(ctx context.Context, pod string, patch []byte) error {
			_, err := c.client.CoreV1().Pods(job.Namespace).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		},
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if fresh.UID != job.UID {
				return fmt.Errorf("job %s/%s was recreated", job.Namespace, job.Name)
			}
			if fresh.DeletionTimestamp != nil {
				return fmt.Errorf("job %s/%s is being deleted", job.Namespace, job.Name)
			}
			return nil
		},
	}
	return claimer.ClaimPods(ctx, candidates)
}

// updateStatus writes job's status if it differs from orig's and returns
// the stored Job.
func (c *Controller) updateStatus(ctx context.Context, orig, job *batchv1.Job) (*batchv1.Job, error) {
	if apiequality.Semantic.DeepEqual(orig.Status, job.Status) {
		return orig, nil
	}
	next := orig.DeepCopy()
	next.Status = job.Status
	return c.client.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
}

func without(pods, drop []*corev1.Pod) []*corev1.Pod {
	gone := map[types.UID]bool{}
	for _, p := range drop {
		gone[p.UID] = true
	}
	var out []*corev1.Pod
	for _, p := range pods {
		if !gone[p.UID] {
			out = append(out, p)
		}
	}
	return out
}

func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}
