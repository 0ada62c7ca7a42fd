package csrapproving

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/registry/certificates"
)

// Controller approves kubelet client and serving CSRs.
type Controller struct {
	client kubernetes.Interface
	csrs   certlisters.CertificateSigningRequestLister
	nodes  corelisters.NodeLister
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
	synced cache.InformerSynced
}

// New wires the controller to the shared CSR informer.
func New(cc *controller.Context) (*Controller, error) {
	inf := cc.Informers.Certificates().V1().CertificateSigningRequests()
	nodes := cc.Informers.Core().V1().Nodes()
	c := &Controller{
		client: cc.Client,
		csrs:   inf.Lister(),
		nodes:  nodes.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "csrapproving"}),
		log:    cc.Logger.With("controller", "csrapproving"),
		synced: func() bool { return inf.Informer().HasSynced() && nodes.Informer().HasSynced() },
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
	return c, nil
}

// Run approves requests until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, []cache.InformerSynced{c.synced}, c.next)
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		c.log.Debug("sync failed, will retry", "key", key, "err", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func (c *Controller) sync(ctx context.Context, name string) error {
	csr, err := c.csrs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if decided(csr) || len(csr.Status.Certificate) > 0 {
		return nil
	}
	req, err := certificates.ParseCSR(csr.Spec.Request)
	if err != nil {
		return nil // the API server validated it; nothing to do with a bad one
	}
	var node *corev1.Node
	if csr.Spec.SignerName == certificatesv1.KubeletServingSignerName {
		name := strings.TrimPrefix(req.Subject.CommonName, NodeUserPrefix)
		if node, err = c.nodes.Get(name); apierrors.IsNotFound(err) {
			// The kubelet asks once its Node has addresses; the cache
			// may not have them yet.
			return fmt.Errorf("node %q of serving csr %s: not in the cache yet", name, csr.Name)
		} else if err != nil {
			return err
		}
	}
	d := Decide(csr, req, node)
	if !d.Approve {
		if node != nil && IsNodeServingCert(req, csr.Spec.Usages) {
			if bad := namesOfNode(req, node); bad != "" {
				// The node's addresses may not be posted yet.
				return fmt.Errorf("serving csr %s: %s is not an address of node %s", csr.Name, bad, node.Name)
			}
		}
		return nil
	}
	csr = csr.DeepCopy()
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "AutoApproved", Message: d.Message, LastUpdateTime: metav1.Now(),
	})
	if _, err := c.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("approve csr %s: %w", csr.Name, err)
	}
	c.log.Info("approved kubelet certificate request", "csr", csr.Name, "signer", csr.Spec.SignerName, "requester", csr.Spec.Username)
	return nil
}

func decided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, cond := range csr.Status.Conditions {
		if cond.Type == certificatesv1.CertificateApproved || cond.Type == certificatesv1.CertificateDenied {
			return true
		}
	}
	return false
}
