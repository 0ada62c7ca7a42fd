package csrcleaner

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Name is the controller's name in the registry.
const Name = "csrcleaner"

// Upstream's periods.
const (
	// Interval is how often every request is looked at.
	Interval = time.Hour
	// Decided requests (issued, denied, failed) are kept this long after
	// the decision.
	DecidedKeep = time.Hour
	// Pending requests are kept this long after their creation.
	PendingKeep = 24 * time.Hour
)

// Controller deletes old certificate signing requests.
type Controller struct {
	client kubernetes.Interface
	csrs   certlisters.CertificateSigningRequestLister
	synced cache.InformerSynced
	log    *slog.Logger
	now    func() time.Time
}

// New wires the controller to the shared CSR informer.
func New(cc *controller.Context) (*Controller, error) {
	inf := cc.Informers.Certificates().V1().CertificateSigningRequests()
	return &Controller{
		client: cc.Client,
		csrs:   inf.Lister(),
		synced: inf.Informer().HasSynced,
		log:    cc.Logger.With("controller", Name),
		now:    time.Now,
	}, nil
}

// Run cleans at start and then every Interval until ctx ends; workers is
// ignored (one pass at a time is plenty).
func (c *Controller) Run(ctx context.Context, _ int) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := c.clean(ctx); err != nil {
			c.log.Warn("cleaning certificate signing requests", "err", err)
		}
	}, Interval)
}

// clean deletes every request Expired says may go.
func (c *Controller) clean(ctx context.Context) error {
	csrs, err := c.csrs.List(labels.Everything())
	if err != nil {
		return err
	}
	now := c.now()
	var errs []error
	for _, csr := range csrs {
		why, err := Expired(csr, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("csr %s: %w", csr.Name, err))
		}
		if why == "" {
			continue
		}
		// Delete only the request looked at, not one re-created under
		// the same name meanwhile.
		err = c.client.CertificatesV1().CertificateSigningRequests().Delete(ctx, csr.Name,
			metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &csr.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete csr %s: %w", csr.Name, err))
			continue
		}
		c.log.Info("deleted certificate signing request", "csr", csr.Name, "reason", why)
	}
	return errors.Join(errs...)
}

// Expired says why csr may be deleted at now ("" to keep it). A
// certificate that cannot be parsed is an error, and the request is judged
// by its conditions alone.
func Expired(csr *certificatesv1.CertificateSigningRequest, now time.Time) (string, error) {
	older := func(t metav1.Time, d time.Duration) bool { return !t.IsZero() && now.Sub(t.Time) > d }
	issued := len(csr.Status.Certificate) > 0
	var certErr error
	if issued && approved(csr) {
		notAfter, err := notAfter(csr.Status.Certificate)
		switch {
		case err != nil:
			certErr = err
		case now.After(notAfter):
			return "its certificate has expired", nil
		}
	}
	for _, cond := range csr.Status.Conditions {
		switch cond.Type {
		case certificatesv1.CertificateApproved:
			if issued && older(cond.LastUpdateTime, DecidedKeep) {
				return fmt.Sprintf("issued more than %v ago", DecidedKeep), certErr
			}
		case certificatesv1.CertificateDenied:
			if older(cond.LastUpdateTime, DecidedKeep) {
				return fmt.Sprintf("denied more than %v ago", DecidedKeep), certErr
			}
		case certificatesv1.CertificateFailed:
			if older(cond.LastUpdateTime, DecidedKeep) {
				return fmt.Sprintf("failed more than %v ago", DecidedKeep), certErr
			}
		}
	}
	if len(csr.Status.Conditions) == 0 && older(csr.CreationTimestamp, PendingKeep) {
		return fmt.Sprintf("pending for more than %v", PendingKeep), certErr
	}
	return "", certErr
}

func approved(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, cond := range csr.Status.Conditions {
		if cond.Type == certificatesv1.CertificateApproved {
			return true
		}
	}
	return false
}

// notAfter is the expiry of the first certificate in the PEM bundle.
func notAfter(bundle []byte) (time.Time, error) {
	block, _ := pem.Decode(bundle)
	if block == nil || block.Type != "CERTIFICATE" {
		return time.Time{}, errors.New("status.certificate holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse status.certificate: %w", err)
	}
	return cert.NotAfter, nil
}
