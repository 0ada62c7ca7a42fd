package csrsigning

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/registry/certificates"
)

// Controller signs approved CSRs of the kubernetes.io kubelet and client
// signers.
type Controller struct {
	client kubernetes.Interface
	csrs   certlisters.CertificateSigningRequestLister
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
	synced cache.InformerSynced
	ca     *CA // nil: no signing CA configured, nothing is signed
	// duration is --cluster-signing-duration.
	duration time.Duration
	now      func() time.Time
}

// New wires the controller to the shared CSR informer and loads the CA
// named by the options.
func New(cc *controller.Context) (*Controller, error) {
	inf := cc.Informers.Certificates().V1().CertificateSigningRequests()
	c := &Controller{
		client: cc.Client,
		csrs:   inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "csrsigning"}),
		log:      cc.Logger.With("controller", "csrsigning"),
		synced:   inf.Informer().HasSynced,
		duration: cmp.Or(cc.Options.ClusterSigningDuration, DefaultDuration),
		now:      time.Now,
	}
	if f := cc.Options.ClusterSigningCertFile; f != "" {
		ca, err := LoadCA(f, cc.Options.ClusterSigningKeyFile)
		if err != nil {
			return nil, err
		}
		c.ca = ca
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

// Run signs requests until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	if c.ca == nil {
		c.log.Info("no cluster signing CA configured; CSRs will not be signed")
	}
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

// signable: approved, not denied or failed, not yet issued, ours.
func signable(csr *certificatesv1.CertificateSigningRequest) bool {
	if len(csr.Status.Certificate) > 0 || !Signers.Has(csr.Spec.SignerName) {
		return false
	}
	approved := false
	for _, cond := range csr.Status.Conditions {
		switch cond.Type {
		case certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			return false
		case certificatesv1.CertificateApproved:
			approved = cond.Status == corev1.ConditionTrue
		}
	}
	return approved
}

func (c *Controller) sync(ctx context.Context, name string) error {
	if c.ca == nil {
		return nil
	}
	cached, err := c.csrs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !signable(cached) {
		return nil
	}
	csr := cached.DeepCopy()
	req, err := certificates.ParseCSR(csr.Spec.Request)
	if err == nil {
		err = ValidateForSigner(csr.Spec.SignerName, req, csr.Spec.Usages)
	}
	if err != nil {
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue,
			Reason: "SignerValidationFailure", Message: err.Error(), LastUpdateTime: metav1.Now(),
		})
		return c.updateStatus(ctx, csr)
	}
	d := Duration(c.duration, csr.Spec.ExpirationSeconds)
	certPEM, err := c.ca.Sign(req, csr.Spec.Usages, d, c.now())
	if err != nil {
		return fmt.Errorf("sign csr %s: %w", name, err)
	}
	csr.Status.Certificate = certPEM
	if err := c.updateStatus(ctx, csr); err != nil {
		return err
	}
	c.log.Info("signed certificate", "csr", name, "subject", req.Subject.String(), "signer", csr.Spec.SignerName)
	return nil
}

func (c *Controller) updateStatus(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	_, err := c.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update csr %s status: %w", csr.Name, err)
	}
	return nil
}
