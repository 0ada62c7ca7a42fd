package agent

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
)

// ClientRotator renews the node's client certificate (ClientCertFile,
// written by Join) before it expires, as upstream's kubelet with
// rotateCertificates: at a random point between 70% and 90% of its
// lifetime it makes a new key and a CertificateSigningRequest as the node
// itself (auto-approved by csrapproving), and replaces the file with a
// rename. client-go re-reads the file at each new TLS handshake; Rotated
// (closing the client's connections) makes the next request handshake
// again, so the agent switches without a restart.
type ClientRotator struct {
	Path     string
	NodeName string
	Client   kubernetes.Interface
	// Rotated is called after a new certificate is written.
	Rotated func()
	Logger  *slog.Logger
	// now and jitter are replaced in tests.
	now    func() time.Time
	jitter func() float64
}

// Run renews the certificate until ctx ends.
func (r *ClientRotator) Run(ctx context.Context) error {
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "client-cert-rotation")
	if r.now == nil {
		r.now = time.Now
	}
	if r.jitter == nil {
		r.jitter = jitter
	}
	var key *ecdsa.PrivateKey // kept across failed attempts: a retry finds its CSR
	for fails := 0; ; {
		cur, err := loadCertAndKey(r.Path)
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		if want := "system:node:" + r.NodeName; cur.Leaf.Subject.CommonName != want {
			log.Info("not rotating: the client certificate is not the node's", "subject", cur.Leaf.Subject.CommonName, "want", want)
			return nil
		}
		if fails == 0 {
			deadline := rotationDeadline(cur.Leaf, r.jitter())
			log.Info("client certificate rotation scheduled", "notAfter", cur.Leaf.NotAfter, "deadline", deadline)
			if !sleepUntil(ctx, deadline) {
				return nil
			}
		}
		if key == nil {
			if key, err = newKey(); err != nil {
				return err
			}
		}
		if err := r.renew(ctx, key, log); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errCSRRejected) {
				key = nil // a new request, not the rejected one again
			}
			fails++
			log.Error("client certificate rotation failed; retrying", "err", err, "in", backoff(fails))
			if !sleepUntil(ctx, r.now().Add(backoff(fails))) {
				return nil
			}
			continue
		}
		key, fails = nil, 0
	}
}

// renew requests a certificate for key and writes it.
func (r *ClientRotator) renew(ctx context.Context, key *ecdsa.PrivateKey, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	certPEM, err := clientCertRequest(r.NodeName).request(ctx, r.Client, key, log)
	if err != nil {
		return err
	}
	if err := writeCertAndKey(r.Path, certPEM, key); err != nil {
		return err
	}
	if c, err := loadCertAndKey(r.Path); err == nil {
		log.Info("rotated the client certificate", "serial", c.Leaf.SerialNumber.Text(16), "notAfter", c.Leaf.NotAfter)
	}
	if r.Rotated != nil {
		r.Rotated()
	}
	return nil
}
