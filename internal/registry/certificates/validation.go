package certificates

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Well-known signers (k8s.io/api/certificates/v1).
const (
	KubeAPIServerClientKubeletSigner = certificatesv1.KubeAPIServerClientKubeletSignerName
	KubeAPIServerClientSigner        = certificatesv1.KubeAPIServerClientSignerName
	KubeletServingSigner             = certificatesv1.KubeletServingSignerName
	LegacyUnknownSigner              = "kubernetes.io/legacy-unknown"
)

// minExpirationSeconds is upstream's lower bound for spec.expirationSeconds.
const minExpirationSeconds = 600

var validUsages = sets.New(
	string(certificatesv1.UsageSigning), string(certificatesv1.UsageDigitalSignature),
	string(certificatesv1.UsageContentCommitment), string(certificatesv1.UsageKeyEncipherment),
	string(certificatesv1.UsageKeyAgreement), string(certificatesv1.UsageDataEncipherment),
	string(certificatesv1.UsageCertSign), string(certificatesv1.UsageCRLSign),
	string(certificatesv1.UsageEncipherOnly), string(certificatesv1.UsageDecipherOnly),
	string(certificatesv1.UsageAny), string(certificatesv1.UsageServerAuth),
	string(certificatesv1.UsageClientAuth), string(certificatesv1.UsageCodeSigning),
	string(certificatesv1.UsageEmailProtection), string(certificatesv1.UsageSMIME),
	string(certificatesv1.UsageIPsecEndSystem), string(certificatesv1.UsageIPsecTunnel),
	string(certificatesv1.UsageIPsecUser), string(certificatesv1.UsageTimestamping),
	string(certificatesv1.UsageOCSPSigning), string(certificatesv1.UsageMicrosoftSGC),
	string(certificatesv1.UsageNetscapeSGC),
)

// ParseCSR decodes a PEM "CERTIFICATE REQUEST" and checks its signature.
func ParseCSR(pemBytes []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("PEM block type must be CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, err
	}
	return req, nil
}

// ValidateCreate is upstream's validation of a new request.
func ValidateCreate(csr *certificatesv1.CertificateSigningRequest) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if _, err := ParseCSR(csr.Spec.Request); err != nil {
		errs = append(errs, field.Invalid(spec.Child("request"), field.OmitValueType{}, err.Error()))
	}
	if len(csr.Spec.Usages) == 0 {
		errs = append(errs, field.Required(spec.Child("usages"), "usages must be provided"))
	}
	seen := sets.New[string]()
	for i, u := range csr.Spec.Usages {
		p := spec.Child("usages").Index(i)
		switch {
		case !validUsages.Has(string(u)):
			errs = append(errs, field.NotSupported(p, u, sets.List(validUsages)))
		case seen.Has(string(u)):
			errs = append(errs, field.Duplicate(p, u))
		}
		seen.Insert(string(u))
	}
	errs = append(errs, validateSignerName(spec.Child("signerName"), csr.Spec.SignerName)...)
	if csr.Spec.SignerName == LegacyUnknownSigner {
		errs = append(errs, field.Invalid(spec.Child("signerName"), csr.Spec.SignerName, "the legacy signerName is not allowed via this API version"))
	}
	if e := csr.Spec.ExpirationSeconds; e != nil && *e < minExpirationSeconds {
		errs = append(errs, field.Invalid(spec.Child("expirationSeconds"), *e, "may not specify a duration less than 600 seconds (10 minutes)"))
	}
	errs = append(errs, validateConditions(csr)...)
	return errs
}

// validateSignerName requires "<fully qualified domain>/<path>".
func validateSignerName(p *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	domain, path, ok := strings.Cut(name, "/")
	if !ok || path == "" || domain == "" {
		return field.ErrorList{field.Invalid(p, name, "must be a fully qualified domain and path of the form 'example.com/signer-name'")}
	}
	var errs field.ErrorList
	if msgs := validation.IsDNS1123Subdomain(domain); len(msgs) > 0 || !strings.Contains(domain, ".") {
		errs = append(errs, field.Invalid(p, name, "should be a domain with at least two segments separated by dots"))
	}
	if len(name) > 571 {
		errs = append(errs, field.TooLong(p, "", 571))
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			errs = append(errs, field.Invalid(p, name, "validating path: segments must not be empty, '.' or '..'"))
			break
		}
	}
	return errs
}

// validateConditions checks condition types and statuses and that
// Approved and Denied do not coexist.
func validateConditions(csr *certificatesv1.CertificateSigningRequest) field.ErrorList {
	p := field.NewPath("status", "conditions")
	var errs field.ErrorList
	seen := map[certificatesv1.RequestConditionType]bool{}
	for i, c := range csr.Status.Conditions {
		cp := p.Index(i)
		if c.Type == "" {
			errs = append(errs, field.Required(cp.Child("type"), ""))
		}
		switch c.Status {
		case corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown:
		default:
			errs = append(errs, field.NotSupported(cp.Child("status"), c.Status, []string{"False", "True", "Unknown"}))
		}
		switch c.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			if seen[c.Type] {
				errs = append(errs, field.Duplicate(cp.Child("type"), c.Type))
			}
		}
		seen[c.Type] = true
	}
	if hasTrue(csr, certificatesv1.CertificateApproved) && hasTrue(csr, certificatesv1.CertificateDenied) {
		errs = append(errs, field.Invalid(p, csr.Status.Conditions, "Approved and Denied conditions are mutually exclusive"))
	}
	return errs
}

func hasTrue(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// ValidateUpdate checks a main-endpoint update (only metadata changes).
func ValidateUpdate(csr, old *certificatesv1.CertificateSigningRequest) field.ErrorList {
	return validateConditions(csr)
}

// validateApprovalKept forbids removing or changing an Approved or Denied
// condition once set.
func validateApprovalKept(csr, old *certificatesv1.CertificateSigningRequest) field.ErrorList {
	p := field.NewPath("status", "conditions")
	var errs field.ErrorList
	for _, oc := range old.Status.Conditions {
		if !isApprovalType(oc.Type) {
			continue
		}
		found := false
		for _, c := range csr.Status.Conditions {
			if c.Type == oc.Type {
				found = true
				if c.Status != oc.Status {
					errs = append(errs, field.Forbidden(p, fmt.Sprintf("updates may not modify a condition of type %q", oc.Type)))
				}
			}
		}
		if !found {
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("updates may not remove a condition of type %q", oc.Type)))
		}
	}
	return errs
}

// ValidateApprovalUpdate checks an update through /approval.
func ValidateApprovalUpdate(csr, old *certificatesv1.CertificateSigningRequest) field.ErrorList {
	errs := validateConditions(csr)
	return append(errs, validateApprovalKept(csr, old)...)
}

// ValidateStatusUpdate checks an update through /status: the certificate
// must be PEM certificates and, once issued, may not change.
func ValidateStatusUpdate(csr, old *certificatesv1.CertificateSigningRequest) field.ErrorList {
	errs := validateConditions(csr)
	errs = append(errs, validateApprovalKept(csr, old)...)
	p := field.NewPath("status", "certificate")
	if len(old.Status.Certificate) > 0 && string(old.Status.Certificate) != string(csr.Status.Certificate) {
		errs = append(errs, field.Forbidden(p, "updates may not modify existing certificate content"))
	}
	if len(csr.Status.Certificate) > 0 {
		if err := validateCertificatePEM(csr.Status.Certificate); err != nil {
			errs = append(errs, field.Invalid(p, field.OmitValueType{}, err.Error()))
		}
	}
	return errs
}

func validateCertificatePEM(data []byte) error {
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("only CERTIFICATE PEM blocks are allowed, found %q", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return errors.New("must contain at least one CERTIFICATE PEM block")
	}
	if len(strings.TrimSpace(string(data))) > 0 {
		return errors.New("must contain only PEM blocks")
	}
	return nil
}
