package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/pki"
)

// Files of the node's certificates under <data-dir>/agent. Each holds the
// certificate and its key in one PEM file, replaced by a rename, so a
// reader never sees a certificate with another one's key (upstream's
// kubelet-client-current.pem and kubelet-server-current.pem).
const (
	ClientCertFile  = "kubelet-client-current.pem"
	ServingCertFile = "kubelet-server-current.pem"
)

// newKey makes a node key (ECDSA P-256, as upstream's kubelet).
func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	return k, nil
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode node key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// writeCertAndKey writes certificate and key to one 0600 file through a
// temporary file and a rename.
func writeCertAndKey(path string, certPEM []byte, key *ecdsa.PrivateKey) error {
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("issued certificate does not match the key: %w", err)
	}
	return writeSecretAtomic(path, append(append([]byte{}, certPEM...), keyPEM...))
}

// writeSecretAtomic writes a 0600 file through a temporary file and a
// rename.
func writeSecretAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := pki.WriteSecretFile(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// loadCertAndKey reads a file written by writeCertAndKey.
func loadCertAndKey(path string) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(path, path)
	if err != nil {
		return nil, err
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &pair, nil
}

// rotationDeadline is when a certificate is renewed: at a random point
// between 70% and 90% of its lifetime, as upstream's kubelet certificate
// manager, so that nodes issued at once do not all renew at once.
func rotationDeadline(cert *x509.Certificate, jitter float64) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(time.Duration(float64(life) * (0.7 + 0.2*jitter)))
}

// certRequest is one CertificateSigningRequest the agent makes.
type certRequest struct {
	tmpl   *x509.CertificateRequest
	signer string
	usages []certificatesv1.KeyUsage
	// prefix names the request: prefix-<node>-<hash of key and node>.
	prefix string
	node   string
}

// errCSRRejected marks a denied or failed request: waiting longer does not
// help.
var errCSRRejected = errors.New("certificate signing request rejected")

// request creates the CSR for key (or finds the one a retry made) and
// waits until it is issued, denied or failed or ctx ends; it returns the
// certificate PEM.
func (r certRequest) request(ctx context.Context, cs kubernetes.Interface, key *ecdsa.PrivateKey, log *slog.Logger) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, r.tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	// A name from the node and its key: `kubectl get csr` shows the node,
	// and a retry finds its own request.
	sum := sha256.Sum256(append(pub, r.node...))
	name := r.prefix + "-" + r.node + "-" + hex.EncodeToString(sum[:])[:16]
	if len(name) > 253 {
		name = r.prefix + "-" + hex.EncodeToString(sum[:])[:32]
	}
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: r.signer,
			Usages:     r.usages,
		},
	}
	api := cs.CertificatesV1().CertificateSigningRequests()
	if _, err := api.Create(ctx, csr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		if apierrors.IsUnauthorized(err) {
			return nil, fmt.Errorf("%w: check --token", ErrTokenRejected)
		}
		return nil, fmt.Errorf("create certificate signing request: %w", err)
	}
	log.Info("created certificate signing request; waiting for approval and signing", "csr", name, "signer", r.signer)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		cur, err := api.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsUnauthorized(err):
			return nil, fmt.Errorf("%w: check --token", ErrTokenRejected)
		case err == nil:
			for _, c := range cur.Status.Conditions {
				switch c.Type {
				case certificatesv1.CertificateDenied:
					return nil, fmt.Errorf("%w: %s was denied: %s %s", errCSRRejected, name, c.Reason, c.Message)
				case certificatesv1.CertificateFailed:
					return nil, fmt.Errorf("%w: %s failed: %s %s", errCSRRejected, name, c.Reason, c.Message)
				}
			}
			if len(cur.Status.Certificate) > 0 {
				return cur.Status.Certificate, nil
			}
		case !apierrors.IsNotFound(err):
			log.Debug("read certificate signing request", "csr", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for certificate signing request %s to be approved and issued: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}

// sleepUntil waits until t or ctx ends; it reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// jitter is a random fraction in [0,1) for rotationDeadline.
func jitter() float64 { return mrand.Float64() }

// backoff is the wait after the n-th failed attempt (1s doubling to 1m).
func backoff(n int) time.Duration {
	return min(time.Second<<min(n, 6), time.Minute)
}
