package certificates

import (
	"fmt"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/skiff-sh/skiff/internal/registry"
)

// table prints kube-apiserver's CSR columns: NAME AGE SIGNERNAME REQUESTOR
// REQUESTEDDURATION CONDITION.
type table struct{ now func() time.Time }

// Table returns the `kubectl get csr` convertor.
func Table() registry.TableConvertor { return &table{now: time.Now} }

func (t *table) ColumnDefinitions() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]},
		{Name: "Age", Type: "string", Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]},
		{Name: "SignerName", Type: "string", Description: certificatesv1.CertificateSigningRequestSpec{}.SwaggerDoc()["signerName"]},
		{Name: "Requestor", Type: "string", Description: "Name of the user requesting the certificate."},
		{Name: "RequestedDuration", Type: "string", Description: certificatesv1.CertificateSigningRequestSpec{}.SwaggerDoc()["expirationSeconds"]},
		{Name: "Condition", Type: "string", Description: certificatesv1.CertificateSigningRequestStatus{}.SwaggerDoc()["conditions"]},
	}
}

func (t *table) Cells(obj runtime.Object) ([]interface{}, error) {
	csr, ok := obj.(*certificatesv1.CertificateSigningRequest)
	if !ok {
		if _, err := meta.Accessor(obj); err != nil {
			return nil, fmt.Errorf("certificates table: %w", err)
		}
		return nil, fmt.Errorf("certificates table: unexpected %T", obj)
	}
	age := "<unknown>"
	if ts := csr.CreationTimestamp; !ts.IsZero() {
		age = duration.HumanDuration(t.now().Sub(ts.Time))
	}
	signer := csr.Spec.SignerName
	if signer == "" {
		signer = "<none>"
	}
	requested := "<none>"
	if e := csr.Spec.ExpirationSeconds; e != nil {
		requested = duration.HumanDuration(time.Duration(*e) * time.Second)
	}
	return []interface{}{csr.Name, age, signer, csr.Spec.Username, requested, Condition(csr)}, nil
}

// Condition is the CONDITION column: Approved, Denied or Pending, then
// ",Failed" and ",Issued" as they apply.
func Condition(csr *certificatesv1.CertificateSigningRequest) string {
	var approved, denied, failed bool
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved:
			approved = true
		case certificatesv1.CertificateDenied:
			denied = true
		case certificatesv1.CertificateFailed:
			failed = true
		}
	}
	s := "Pending"
	if denied {
		s = "Denied"
	} else if approved {
		s = "Approved"
	}
	if failed {
		s += ",Failed"
	}
	if len(csr.Status.Certificate) > 0 {
		s += ",Issued"
	}
	return s
}
