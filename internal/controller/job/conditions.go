package job

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func newCondition(t batchv1.JobConditionType, reason, msg string, now time.Time) *batchv1.JobCondition {
	return &batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
		LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
}

// findCondition returns the condition of type t with status True, or nil.
func findCondition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// isFinished reports Complete=True or Failed=True.
func isFinished(j *batchv1.Job) bool {
	return findCondition(j, batchv1.JobComplete) != nil || findCondition(j, batchv1.JobFailed) != nil
}

// setCondition makes condition t have status st; a False condition is not
// added when absent. It reports whether anything changed.
func setCondition(j *batchv1.Job, t batchv1.JobConditionType, st corev1.ConditionStatus, reason, msg string, now time.Time) bool {
	for i := range j.Status.Conditions {
		c := &j.Status.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status == st && c.Reason == reason && c.Message == msg {
			return false
		}
		if c.Status != st {
			c.LastTransitionTime = metav1.NewTime(now)
		}
		c.Status, c.Reason, c.Message, c.LastProbeTime = st, reason, msg, metav1.NewTime(now)
		return true
	}
	if st == corev1.ConditionFalse {
		return false
	}
	j.Status.Conditions = append(j.Status.Conditions, *newCondition(t, reason, msg, now))
	return true
}

func isSuspended(j *batchv1.Job) bool { return j.Spec.Suspend != nil && *j.Spec.Suspend }

func backoffLimit(j *batchv1.Job) int32 {
	if j.Spec.BackoffLimit == nil {
		return 6
	}
	return *j.Spec.BackoffLimit
}

// onlyReplaceFailed: a replacement waits until the old pod is Failed, not
// merely terminating.
func onlyReplaceFailed(j *batchv1.Job) bool {
	if p := j.Spec.PodReplacementPolicy; p != nil && *p == batchv1.Failed {
		return true
	}
	return j.Spec.PodFailurePolicy != nil
}

// isPodFailed: Failed, or (unless only failed pods are replaced) being
// deleted before it succeeded, so orphaned pods still count.
func isPodFailed(p *corev1.Pod, j *batchv1.Job) bool {
	if p.Status.Phase == corev1.PodFailed {
		return true
	}
	if onlyReplaceFailed(j) {
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded
}

// failJobMessage returns the message of the first FailJob rule a failed
// pod matches.
func failJobMessage(j *batchv1.Job, pods []*corev1.Pod) *string {
	if j.Spec.PodFailurePolicy == nil {
		return nil
	}
	for _, p := range pods {
		if !isPodFailed(p, j) {
			continue
		}
		if msg, _, _ := matchFailurePolicy(j.Spec.PodFailurePolicy, p); msg != nil {
			return msg
		}
	}
	return nil
}

// pastBackoffLimitOnFailure: with restartPolicy OnFailure the kubelet
// restarts containers in place; their restarts count toward backoffLimit.
func pastBackoffLimitOnFailure(j *batchv1.Job, pods []*corev1.Pod) bool {
	if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var n int32
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
			for _, cs := range list {
				n += cs.RestartCount
			}
		}
	}
	if backoffLimit(j) == 0 {
		return n > 0
	}
	return n >= backoffLimit(j)
}

func pastDeadline(j *batchv1.Job, now time.Time) bool {
	if j.Spec.ActiveDeadlineSeconds == nil || j.Status.StartTime == nil || isSuspended(j) {
		return false
	}
	return now.Sub(j.Status.StartTime.Time) >= time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second
}
