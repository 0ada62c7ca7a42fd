package rootcacertpublisher

import (
	"context"
	"log/slog"
	"maps"

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

// Name is upstream's controller name.
const Name = "root-ca-cert-publisher"

// ConfigMapName and DataKey are what pods mount.
const (
	ConfigMapName = "kube-root-ca.crt"
	DataKey       = "ca.crt"
	// descriptionAnnotation is the note upstream puts on the ConfigMap.
	descriptionAnnotation = "kubernetes.io/description"
	description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. " +
		"No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Controller publishes the root CA in every namespace.
type Controller struct {
	client  kubernetes.Interface
	ns      corelisters.NamespaceLister
	cm      corelisters.ConfigMapLister
	rootCA  string
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
	metrics *metrics.Metrics
	synced  []cache.InformerSynced
}

// New wires the controller to the shared namespace and ConfigMap
// informers; the queue holds namespace names.
func New(cc *controller.Context) (*Controller, error) {
	nsInf := cc.Informers.Core().V1().Namespaces()
	cmInf := cc.Informers.Core().V1().ConfigMaps()
	c := &Controller{
		client: cc.Client, ns: nsInf.Lister(), cm: cmInf.Lister(), rootCA: string(cc.Options.RootCA),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		log:     cc.Logger.With("controller", Name),
		metrics: cc.Metrics,
		synced:  []cache.InformerSynced{nsInf.Informer().HasSynced, cmInf.Informer().HasSynced},
	}
	if _, err := nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.queue.Add(obj.(*corev1.Namespace).Name) },
		UpdateFunc: func(_, cur any) { c.queue.Add(cur.(*corev1.Namespace).Name) },
	}); err != nil {
		return nil, err
	}
	cmChanged := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == ConfigMapName {
			c.queue.Add(cm.Namespace)
		}
	}
	if _, err := cmInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur any) { cmChanged(cur) },
		DeleteFunc: cmChanged,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run processes namespaces until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	if c.rootCA == "" {
		c.log.Info("no root CA configured; not publishing " + ConfigMapName)
		<-ctx.Done()
		return
	}
	controller.RunWorkers(ctx, c.queue, workers, c.synced, c.next)
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, Name, c.metrics, c.log, controller.NoResult(c.sync))
}

// sync makes namespace ns's ConfigMap hold exactly the root CA.
func (c *Controller) sync(ctx context.Context, ns string) error {
	n, err := c.ns.Get(ns)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	want := map[string]string{DataKey: c.rootCA}
	cm, err := c.cm.ConfigMaps(ns).Get(ConfigMapName)
	if apierrors.IsNotFound(err) {
		_, err = c.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: ns,
				Annotations: map[string]string{descriptionAnnotation: description}},
			Data: want,
		}, metav1.CreateOptions{})
		// Terminating namespaces refuse new content; a concurrent create
		// is as good as ours.
		if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) || apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if maps.Equal(cm.Data, want) && len(cm.BinaryData) == 0 && cm.Annotations[descriptionAnnotation] == description {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data, cm.BinaryData = want, nil
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[descriptionAnnotation] = description
	_, err = c.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile: the delete event requeues
	}
	return err
}
