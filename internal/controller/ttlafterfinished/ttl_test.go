package ttlafterfinished

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

func TestDeletesAfterTTL(t *testing.T) {
	finished := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ttl := int32(60)
	job := func(name string, ttl *int32, cond batchv1.JobConditionType) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("u-" + name)}, Spec: batchv1.JobSpec{TTLSecondsAfterFinished: ttl}}
		if cond != "" {
			j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(finished)}}
		}
		return j
	}
	for _, tc := range []struct {
		name      string
		job       *batchv1.Job
		after     time.Duration
		wantGone  bool
		wantQueue bool
	}{
		{"complete, before TTL", job("a", &ttl, batchv1.JobComplete), 30 * time.Second, false, true},
		{"complete, after TTL", job("b", &ttl, batchv1.JobComplete), 61 * time.Second, true, false},
		{"failed, after TTL", job("c", &ttl, batchv1.JobFailed), 61 * time.Second, true, false},
		{"running", job("d", &ttl, ""), time.Hour, false, false},
		{"no TTL", job("e", nil, batchv1.JobComplete), time.Hour, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(tc.job)
			var policy *metav1.DeletionPropagation
			cs.PrependReactor("delete", "jobs", func(a clienttesting.Action) (bool, runtime.Object, error) {
				policy = a.(clienttesting.DeleteAction).GetDeleteOptions().PropagationPolicy
				return false, nil, nil
			})
			inf := informers.NewSharedInformerFactory(cs, 0)
			c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer c.queue.ShutDown()
			c.now = func() time.Time { return finished.Add(tc.after) }
			inf.Batch().V1().Jobs().Informer().GetIndexer().Add(tc.job)
			if err := c.sync(context.Background(), "ns/"+tc.job.Name); err != nil {
				t.Fatal(err)
			}
			_, err = cs.BatchV1().Jobs("ns").Get(context.Background(), tc.job.Name, metav1.GetOptions{})
			if gone := apierrors.IsNotFound(err); gone != tc.wantGone {
				t.Errorf("deleted %v, want %v", gone, tc.wantGone)
			}
			if tc.wantGone && (policy == nil || *policy != metav1.DeletePropagationBackground) {
				t.Errorf("propagation %v, want Background", policy)
			}
			// AddAfter shows up in the queue only once due; check the
			// computed wait instead.
			if wait, _ := c.remaining(tc.job); (wait > 0) != tc.wantQueue {
				t.Errorf("wait %v, want requeue %v", wait, tc.wantQueue)
			}
		})
	}
}
