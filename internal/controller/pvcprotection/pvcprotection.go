package pvcprotection

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
	Name      = "pvc-protection"
	Finalizer = "kubernetes.io/pvc-protection"
)

// Controller keeps in-use claims from being removed.
type Controller struct {
	client  kubernetes.Interface
	claims  corelisters.PersistentVolumeClaimLister
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
	metrics *metrics.Metrics
	synced  []cache.InformerSynced
}

// New wires the controller to the shared claim and pod informers.
func New(cc *controller.Context) (*Controller, error) {
	claims := cc.Informers.Core().V1().PersistentVolumeClaims()
	pods := cc.Informers.Core().V1().Pods()
	c := &Controller{
		client: cc.Client,
		claims: claims.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		log:     cc.Logger.With("controller", Name),
		metrics: cc.Metrics,
		synced:  []cache.InformerSynced{claims.Informer().HasSynced, pods.Informer().HasSynced},
	}
	add := func(obj any) {
		if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(k)
		}
	}
	if _, err := claims.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: add, UpdateFunc: func(_, cur any) { add(cur) },
	}); err != nil {
		return nil, err
	}
	// A pod that ends or goes away may free its claims.
	podChanged := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if pod, ok := obj.(*corev1.Pod); ok {
			for _, name := range ClaimNames(pod) {
				c.queue.Add(pod.Namespace + "/" + name)
			}
		}
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: podChanged, UpdateFunc: func(_, cur any) { podChanged(cur) }, DeleteFunc: podChanged,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run processes claims until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, c.synced, func(ctx context.Context) bool {
		return controller.ProcessNext(ctx, c.queue, Name, c.metrics, c.log, func(ctx context.Context, key string) (controller.Result, error) {
			return controller.Result{}, c.sync(ctx, key)
		})
	})
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	has := slices.Contains(pvc.Finalizers, Finalizer)
	if pvc.DeletionTimestamp == nil {
		if has {
			return nil
		}
		pvc = pvc.DeepCopy()
		pvc.Finalizers = append(pvc.Finalizers, Finalizer)
		return c.update(ctx, pvc, "add")
	}
	if !has {
		return nil
	}
	// The cache may lag behind a pod just created: ask the API server
	// before letting the claim go, as upstream does.
	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods of %s: %w", ns, err)
	}
	for i := range pods.Items {
		if Uses(&pods.Items[i], name) {
			c.log.Debug("claim still in use", "claim", key, "pod", pods.Items[i].Name)
			return nil
		}
	}
	pvc = pvc.DeepCopy()
	pvc.Finalizers = slices.DeleteFunc(pvc.Finalizers, func(f string) bool { return f == Finalizer })
	return c.update(ctx, pvc, "remove")
}

func (c *Controller) update(ctx context.Context, pvc *corev1.PersistentVolumeClaim, what string) error {
	if _, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("%s finalizer of claim %s/%s: %w", what, pvc.Namespace, pvc.Name, err)
	}
	c.log.Debug(what+" finalizer", "claim", pvc.Namespace+"/"+pvc.Name)
	return nil
}

// ClaimNames lists the claims a pod refers to: persistentVolumeClaim
// volumes and the <pod>-<volume> claims of generic ephemeral volumes.
func ClaimNames(pod *corev1.Pod) []string {
	var out []string
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			out = append(out, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			out = append(out, pod.Name+"-"+v.Name)
		}
	}
	return out
}

// Uses reports whether pod holds claim: it is scheduled (a kubelet may be
// using the volume), not terminated, and refers to it. As upstream, a pod
// not yet scheduled does not hold its claims: the kubelet refuses to start
// a pod whose claim is being deleted.
func Uses(pod *corev1.Pod, claim string) bool {
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	return slices.Contains(ClaimNames(pod), claim)
}
