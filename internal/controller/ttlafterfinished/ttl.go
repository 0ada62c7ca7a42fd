package ttlafterfinished

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Controller is the TTL-after-finished controller.
type Controller struct {
	metrics *metrics.Metrics
	client  kubernetes.Interface
	jobs    batchlisters.JobLister
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
	now     func() time.Time
	synced  cache.InformerSynced
}

// New wires the controller to the shared Job informer.
func New(cc *controller.Context) (*Controller, error) {
	inf := cc.Informers.Batch().V1().Jobs()
	c := &Controller{
		metrics: cc.Metrics,
		client:  cc.Client,
		jobs:    inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ttl_jobs_to_delete"}),
		log:    cc.Logger.With("controller", "ttl-after-finished"),
		now:    time.Now,
		synced: inf.Informer().HasSynced,
	}
	add := func(obj any) {
		j, ok := obj.(*batchv1.Job)
		if !ok || j.DeletionTimestamp != nil || j.Spec.TTLSecondsAfterFinished == nil || finishedAt(j) == nil {
			return
		}
		if k, err := cache.MetaNamespaceKeyFunc(j); err == nil {
			c.queue.Add(k)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    add,
		UpdateFunc: func(_, cur any) { add(cur) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run processes finished Jobs until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, []cache.InformerSynced{c.synced}, c.next)
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, "ttl-after-finished", c.metrics, c.log, controller.NoResult(c.sync))
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	j, err := c.jobs.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if wait, expired := c.remaining(j); !expired {
		if wait > 0 {
			c.queue.AddAfter(key, wait)
		}
		return nil
	}
	// The cache may be stale: confirm with a live read.
	fresh, err := c.client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if wait, expired := c.remaining(fresh); !expired {
		if wait > 0 {
			c.queue.AddAfter(key, wait)
		}
		return nil
	}
	bg := metav1.DeletePropagationBackground
	err = c.client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg,
		Preconditions: &metav1.Preconditions{UID: &fresh.UID, ResourceVersion: &fresh.ResourceVersion}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete expired job %s: %w", key, err)
	}
	c.log.Info("deleted finished job after its TTL", "job", key)
	return nil
}

// remaining returns how long until j expires and whether it has. A Job
// that is not finished, has no TTL or is being deleted never expires here
// (wait 0, expired false).
func (c *Controller) remaining(j *batchv1.Job) (time.Duration, bool) {
	at := finishedAt(j)
	if j.DeletionTimestamp != nil || j.Spec.TTLSecondsAfterFinished == nil || at == nil {
		return 0, false
	}
	left := at.Add(time.Duration(*j.Spec.TTLSecondsAfterFinished) * time.Second).Sub(c.now())
	if left <= 0 {
		return 0, true
	}
	return left, false
}

// finishedAt is when the Complete or Failed condition became True.
func finishedAt(j *batchv1.Job) *time.Time {
	for _, cond := range j.Status.Conditions {
		if (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) && cond.Status == corev1.ConditionTrue {
			t := cond.LastTransitionTime.Time
			return &t
		}
	}
	return nil
}
