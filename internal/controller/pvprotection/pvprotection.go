package pvprotection

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Name is upstream's controller name; Finalizer the finalizer it keeps.
const (
	Name      = "pv-protection"
	Finalizer = "kubernetes.io/pv-protection"
)

// Controller keeps bound volumes from being removed.
type Controller struct {
	client  kubernetes.Interface
	volumes corelisters.PersistentVolumeLister
	claims  corelisters.PersistentVolumeClaimLister
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
	metrics *metrics.Metrics
	synced  []cache.InformerSynced
}

// New wires the controller to the shared volume informer.
func New(cc *controller.Context) (*Controller, error) {
	inf := cc.Informers.Core().V1().PersistentVolumes()
	claims := cc.Informers.Core().V1().PersistentVolumeClaims()
	c := &Controller{
		client:  cc.Client,
		volumes: inf.Lister(),
		claims:  claims.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		log:     cc.Logger.With("controller", Name),
		metrics: cc.Metrics,
		synced:  []cache.InformerSynced{inf.Informer().HasSynced, claims.Informer().HasSynced},
	}
	add := func(obj any) {
		if k, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(k)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: add, UpdateFunc: func(_, cur any) { add(cur) },
	}); err != nil {
		return nil, err
	}
	// A claim that goes frees its volume.
	if _, err := claims.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok && pvc.Spec.VolumeName != "" {
			c.queue.Add(pvc.Spec.VolumeName)
		}
	}}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run processes volumes until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, c.synced, func(ctx context.Context) bool {
		return controller.ProcessNext(ctx, c.queue, Name, c.metrics, c.log, func(ctx context.Context, key string) (controller.Result, error) {
			return controller.Result{}, c.sync(ctx, key)
		})
	})
}

func (c *Controller) sync(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	has := slices.Contains(pv.Finalizers, Finalizer)
	switch {
	case pv.DeletionTimestamp == nil && !has:
		pv = pv.DeepCopy()
		pv.Finalizers = append(pv.Finalizers, Finalizer)
		return c.update(ctx, pv, "add")
	case pv.DeletionTimestamp != nil && has:
		if InUse(pv) {
			// The binder leaves deleted volumes' phase alone, so a volume
			// whose claim is gone can stay Bound: ask the API server.
			r := pv.Spec.ClaimRef
			if r == nil {
				return nil
			}
			claim, err := c.client.CoreV1().PersistentVolumeClaims(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
			if err == nil && (r.UID == "" || claim.UID == r.UID) {
				return nil
			}
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		pv = pv.DeepCopy()
		pv.Finalizers = slices.DeleteFunc(pv.Finalizers, func(f string) bool { return f == Finalizer })
		return c.update(ctx, pv, "remove")
	}
	return nil
}

func (c *Controller) update(ctx context.Context, pv *corev1.PersistentVolume, what string) error {
	if _, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("%s finalizer of volume %s: %w", what, pv.Name, err)
	}
	c.log.Debug(what+" finalizer", "volume", pv.Name)
	return nil
}

// InUse is upstream's rule: a volume is in use while it is Bound. The
// controller also lets a Bound volume go once its claim no longer exists.
func InUse(pv *corev1.PersistentVolume) bool { return pv.Status.Phase == corev1.VolumeBound }
