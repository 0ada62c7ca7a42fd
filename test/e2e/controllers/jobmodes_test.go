package controllers_test

import (
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestJobIndexedSuspendTTL: an Indexed Job gives each pod its completion
// index and finishes with every index done; a suspended Job creates no
// pods until resumed; ttlSecondsAfterFinished deletes the finished Job.
func TestJobIndexedSuspendTTL(t *testing.T) {
	t.Parallel()
	ns := "job-modes"
	cs, ctx := setup(t, ns)
	indexed := batchv1.IndexedCompletion
	ttl := int32(5)
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "indexed"}, Spec: batchv1.JobSpec{
		Completions: i32(3), Parallelism: i32(3), CompletionMode: &indexed, Suspend: new(bool), TTLSecondsAfterFinished: &ttl,
		Template: podTemplate()}}
	*job.Spec.Suspend = true
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Suspended: Suspended condition, no pods.
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, "indexed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if hasCondition(j, batchv1.JobSuspended) != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Suspended condition: %+v", j.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) != 0 {
		t.Fatalf("a suspended Job made pods: %v %v", len(pods.Items), err)
	}
	patch := []byte(`{"spec":{"suspend":false}}`)
	if _, err := cs.BatchV1().Jobs(ns).Patch(ctx, "indexed", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// Every pod carries its index: annotation, label and hostname.
	deadline = time.Now().Add(30 * time.Second)
	var indexes []string
	for len(indexes) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("indexes seen: %v", indexes)
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		indexes = indexes[:0]
		for _, p := range pods.Items {
			idx := p.Annotations[batchv1.JobCompletionIndexAnnotation]
			if p.Labels[batchv1.JobCompletionIndexAnnotation] != idx || p.Spec.Hostname != "indexed-"+idx {
				t.Fatalf("pod %s: index annotation %q, label %q, hostname %q", p.Name, idx, p.Labels[batchv1.JobCompletionIndexAnnotation], p.Spec.Hostname)
			}
			indexes = append(indexes, idx)
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(indexes)
	if !slices.Equal(indexes, []string{"0", "1", "2"}) {
		t.Fatalf("indexes %v, want 0 1 2", indexes)
	}
	j, _ := runJob(ctx, t, cs, ns, "indexed", 0, 60*time.Second, func(j *batchv1.Job) bool { return hasCondition(j, batchv1.JobComplete) != nil })
	if j.Status.CompletedIndexes != "0-2" || j.Status.Succeeded != 3 {
		t.Fatalf("status %+v", j.Status)
	}
	// ttlSecondsAfterFinished: the Job goes five seconds after it finished.
	deadline = time.Now().Add(30 * time.Second)
	for {
		_, err := cs.BatchV1().Jobs(ns).Get(ctx, "indexed", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("finished Job with ttlSecondsAfterFinished=5 still there: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestJobPodFailurePolicy: an exit code listed with FailJob fails the Job
// at once (no retries), with reason PodFailurePolicy.
func TestJobPodFailurePolicy(t *testing.T) {
	t.Parallel()
	ns := "job-pfp"
	cs, ctx := setup(t, ns)
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "fatal"}, Spec: batchv1.JobSpec{BackoffLimit: i32(6), Template: podTemplate(),
		PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{Action: batchv1.PodFailurePolicyActionFailJob,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}}}}}}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	j, _ := runJob(ctx, t, cs, ns, "fatal", 42, 30*time.Second, func(j *batchv1.Job) bool { return hasCondition(j, batchv1.JobFailed) != nil })
	c := hasCondition(j, batchv1.JobFailed)
	if c.Reason != batchv1.JobReasonPodFailurePolicy || j.Status.Failed != 1 {
		t.Fatalf("condition %+v, failed %d; want reason PodFailurePolicy after 1 failure", c, j.Status.Failed)
	}
	if d := time.Since(start); d > 9*time.Second {
		t.Fatalf("FailJob took %v: it must not wait for a back-off", d)
	}
}
