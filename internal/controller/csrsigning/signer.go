package csrsigning

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Upstream's defaults.
const (
	// DefaultDuration is kube-controller-manager's --cluster-signing-duration.
	DefaultDuration = 365 * 24 * time.Hour
	// backdate allows for clock skew between signer and verifier.
	backdate = 5 * time.Minute
	// MinExpirationSeconds is the shortest spec.expirationSeconds honoured.
	MinExpirationSeconds = 600
)

// Duration is how long a certificate for a request lives: the signer's
// duration (--cluster-signing-duration), or the request's
// spec.expirationSeconds (at least 10 minutes) when that is shorter.
func Duration(signing time.Duration, expirationSeconds *int32) time.Duration {
	if expirationSeconds == nil {
		return signing
	}
	want := time.Duration(max(*expirationSeconds, MinExpirationSeconds)) * time.Second
	return min(want, signing)
}

// backdateFor keeps the clock-skew allowance a small part of a short
// lifetime: a 30s certificate backdated by 5 minutes would look 90% spent
// when issued, and the kubelet's renewal (at 70-90% of NotBefore..NotAfter)
// would start again at once.
func backdateFor(d time.Duration) time.Duration {
	return min(backdate, d/10)
}

// Signers are the signer names this controller issues for.
var Signers = sets.New(
	certificatesv1.KubeAPIServerClientKubeletSignerName,
	certificatesv1.KubeAPIServerClientSignerName,
	certificatesv1.KubeletServingSignerName,
)

// CA signs certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// LoadCA reads a PEM certificate and key.
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load signing ca: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse signing ca: %w", err)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("signing ca key cannot sign")
	}
	return &CA{Cert: cert, Key: key}, nil
}

// ValidateForSigner checks the signer-specific rules upstream's signer
// enforces; an error becomes a Failed condition.
func ValidateForSigner(signer string, req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) error {
	u := sets.New(usages...)
	switch signer {
	case certificatesv1.KubeAPIServerClientKubeletSignerName:
		if !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
			return errors.New("subject organization is not system:nodes")
		}
		if !strings.HasPrefix(req.Subject.CommonName, "system:node:") || req.Subject.CommonName == "system:node:" {
			return errors.New("subject common name does not begin with system:node:")
		}
		if len(req.DNSNames)+len(req.EmailAddresses)+len(req.IPAddresses)+len(req.URIs) > 0 {
			return errors.New("DNS, email, IP and URI subjectAltNames are not allowed")
		}
		if !u.Has(certificatesv1.UsageClientAuth) || !u.Has(certificatesv1.UsageDigitalSignature) ||
			!sets.New(certificatesv1.UsageClientAuth, certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment).IsSuperset(u) {
			return fmt.Errorf("usages did not match [client auth digital signature] or [client auth digital signature key encipherment]: %v", usages)
		}
	case certificatesv1.KubeletServingSignerName:
		if !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
			return errors.New("subject organization is not system:nodes")
		}
		if !strings.HasPrefix(req.Subject.CommonName, "system:node:") || req.Subject.CommonName == "system:node:" {
			return errors.New("subject common name does not begin with system:node:")
		}
		if len(req.DNSNames)+len(req.IPAddresses) == 0 {
			return errors.New("DNS or IP subjectAltName is required")
		}
		if len(req.EmailAddresses)+len(req.URIs) > 0 {
			return errors.New("email and URI subjectAltNames are not allowed")
		}
		if !u.Has(certificatesv1.UsageServerAuth) || !u.Has(certificatesv1.UsageDigitalSignature) ||
			!sets.New(certificatesv1.UsageServerAuth, certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment).IsSuperset(u) {
			return fmt.Errorf("usages did not match [server auth digital signature] or [server auth digital signature key encipherment]: %v", usages)
		}
	case certificatesv1.KubeAPIServerClientSignerName:
		if !u.Has(certificatesv1.UsageClientAuth) {
			return errors.New("usages must include client auth")
		}
		if u.Has(certificatesv1.UsageServerAuth) || u.Has(certificatesv1.UsageCodeSigning) {
			return fmt.Errorf("invalid usages for a client certificate: %v", usages)
		}
	default:
		return fmt.Errorf("unknown signer %q", signer)
	}
	return nil
}

// Sign issues a certificate for req valid from now (backdated) for
// duration, capped at the CA's own expiry, and returns it as PEM.
func (ca *CA) Sign(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage, duration time.Duration, now time.Time) ([]byte, error) {
	ku, eku, err := keyUsages(usages)
	if err != nil {
		return nil, err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	notAfter := now.Add(duration)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               req.Subject,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		EmailAddresses:        req.EmailAddresses,
		URIs:                  req.URIs,
		NotBefore:             now.Add(-backdateFor(duration)),
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, req.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

var keyUsageOf = map[certificatesv1.KeyUsage]x509.KeyUsage{
	certificatesv1.UsageSigning:           x509.KeyUsageDigitalSignature,
	certificatesv1.UsageDigitalSignature:  x509.KeyUsageDigitalSignature,
	certificatesv1.UsageContentCommitment: x509.KeyUsageContentCommitment,
	certificatesv1.UsageKeyEncipherment:   x509.KeyUsageKeyEncipherment,
	certificatesv1.UsageKeyAgreement:      x509.KeyUsageKeyAgreement,
	certificatesv1.UsageDataEncipherment:  x509.KeyUsageDataEncipherment,
	certificatesv1.UsageCertSign:          x509.KeyUsageCertSign,
	certificatesv1.UsageCRLSign:           x509.KeyUsageCRLSign,
	certificatesv1.UsageEncipherOnly:      x509.KeyUsageEncipherOnly,
	certificatesv1.UsageDecipherOnly:      x509.KeyUsageDecipherOnly,
}

var extKeyUsageOf = map[certificatesv1.KeyUsage]x509.ExtKeyUsage{
	certificatesv1.UsageAny:             x509.ExtKeyUsageAny,
	certificatesv1.UsageServerAuth:      x509.ExtKeyUsageServerAuth,
	certificatesv1.UsageClientAuth:      x509.ExtKeyUsageClientAuth,
	certificatesv1.UsageCodeSigning:     x509.ExtKeyUsageCodeSigning,
	certificatesv1.UsageEmailProtection: x509.ExtKeyUsageEmailProtection,
	certificatesv1.UsageSMIME:           x509.ExtKeyUsageEmailProtection,
	certificatesv1.UsageIPsecEndSystem:  x509.ExtKeyUsageIPSECEndSystem,
	certificatesv1.UsageIPsecTunnel:     x509.ExtKeyUsageIPSECTunnel,
	certificatesv1.UsageIPsecUser:       x509.ExtKeyUsageIPSECUser,
	certificatesv1.UsageTimestamping:    x509.ExtKeyUsageTimeStamping,
	certificatesv1.UsageOCSPSigning:     x509.ExtKeyUsageOCSPSigning,
	certificatesv1.UsageMicrosoftSGC:    x509.ExtKeyUsageMicrosoftServerGatedCrypto,
	certificatesv1.UsageNetscapeSGC:     x509.ExtKeyUsageNetscapeServerGatedCrypto,
}

func keyUsages(usages []certificatesv1.KeyUsage) (x509.KeyUsage, []x509.ExtKeyUsage, error) {
	var ku x509.KeyUsage
	var eku []x509.ExtKeyUsage
	for _, u := range usages {
		if k, ok := keyUsageOf[u]; ok {
			ku |= k
		} else if e, ok := extKeyUsageOf[u]; ok {
			if !slices.Contains(eku, e) {
				eku = append(eku, e)
			}
		} else {
			return 0, nil, fmt.Errorf("unknown key usage %q", u)
		}
	}
	return ku, eku, nil
}
