package certificates

import (
	"context"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/apiserver/authn"
	"github.com/skiff-sh/skiff/internal/registry"
)

// now is the clock for condition timestamps.
var now = func() metav1.Time { return metav1.NewTime(time.Now()) }

// Resources returns certificates.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	main := &registry.BaseStrategy{
		HasStatus:   true,
		DefaultFunc: defaultCSR,
		PrepareForCreateFunc: func(ctx context.Context, o runtime.Object) {
			csr := o.(*certificatesv1.CertificateSigningRequest)
			csr.Status = certificatesv1.CertificateSigningRequestStatus{}
			stampRequester(ctx, csr)
		},
		PrepareForUpdateFunc: func(_ context.Context, o, old runtime.Object) {
			// The spec is immutable and status has its own endpoints.
			csr, prev := o.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
			csr.Spec = prev.Spec
			csr.Status = prev.Status
		},
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			return ValidateCreate(o.(*certificatesv1.CertificateSigningRequest))
		},
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			return ValidateUpdate(o.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest))
		},
	}
	return []*registry.Resource{{
		GroupVersionResource: certificatesv1.SchemeGroupVersion.WithResource("certificatesigningrequests"),
		Kind:                 "CertificateSigningRequest", SingularName: "certificatesigningrequest", ShortNames: []string{"csr"},
		Strategy: main, Table: Table(),
		New:     func() runtime.Object { return &certificatesv1.CertificateSigningRequest{} },
		NewList: func() runtime.Object { return &certificatesv1.CertificateSigningRequestList{} },
		FieldSet: func(o runtime.Object) fields.Set {
			csr := o.(*certificatesv1.CertificateSigningRequest)
			return fields.Set{"spec.signerName": csr.Spec.SignerName}
		},
		FieldSelectorKeys: []string{"spec.signerName"},
		Subresources: map[string]*registry.Subresource{
			"status":   {Strategy: &statusStrategy{}},
			"approval": {Strategy: &approvalStrategy{}},
		},
	}}
}

// defaultCSR sets an empty condition status to True, as upstream's v1
// defaults do.
func defaultCSR(o runtime.Object) {
	csr := o.(*certificatesv1.CertificateSigningRequest)
	for i := range csr.Status.Conditions {
		if csr.Status.Conditions[i].Status == "" {
			csr.Status.Conditions[i].Status = corev1.ConditionTrue
		}
	}
}

// stampRequester records who asked, from the authenticated user; clients
// cannot choose these fields.
func stampRequester(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) {
	csr.Spec.Username, csr.Spec.UID, csr.Spec.Groups, csr.Spec.Extra = "", "", nil, nil
	u, ok := authn.UserFrom(ctx)
	if !ok {
		return
	}
	csr.Spec.Username, csr.Spec.UID = u.Name, u.UID
	csr.Spec.Groups = append([]string(nil), u.Groups...)
	if len(u.Extra) > 0 {
		csr.Spec.Extra = map[string]certificatesv1.ExtraValue{}
		for k, v := range u.Extra {
			csr.Spec.Extra[k] = append(certificatesv1.ExtraValue(nil), v...)
		}
	}
}

// populateTimestamps fills lastUpdateTime and lastTransitionTime of
// conditions the client left empty, as upstream does.
func populateTimestamps(csr, old *certificatesv1.CertificateSigningRequest) {
	t := now()
	for i := range csr.Status.Conditions {
		c := &csr.Status.Conditions[i]
		if c.LastUpdateTime.IsZero() {
			c.LastUpdateTime = t
		}
		if !c.LastTransitionTime.IsZero() {
			continue
		}
		c.LastTransitionTime = t
		if old == nil {
			continue
		}
		for _, oc := range old.Status.Conditions {
			if oc.Type == c.Type && oc.Status == c.Status && !oc.LastTransitionTime.IsZero() {
				c.LastTransitionTime = oc.LastTransitionTime
			}
		}
	}
}

// isApprovalType: conditions only the approval subresource may write.
func isApprovalType(t certificatesv1.RequestConditionType) bool {
	return t == certificatesv1.CertificateApproved || t == certificatesv1.CertificateDenied
}

// statusStrategy serves /status: signers write status.certificate and
// other conditions; approval conditions are kept from the old object.
type statusStrategy struct{}

var _ registry.Strategy = &statusStrategy{}

func (statusStrategy) Default(o runtime.Object)                         { defaultCSR(o) }
func (statusStrategy) PrepareForCreate(context.Context, runtime.Object) {}
func (statusStrategy) PrepareForUpdate(_ context.Context, o, old runtime.Object) {
	csr, prev := o.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	csr.Spec = prev.Spec
	var conds []certificatesv1.CertificateSigningRequestCondition
	for _, c := range prev.Status.Conditions {
		if isApprovalType(c.Type) {
			conds = append(conds, c)
		}
	}
	for _, c := range csr.Status.Conditions {
		if !isApprovalType(c.Type) {
			conds = append(conds, c)
		}
	}
	csr.Status.Conditions = conds
	populateTimestamps(csr, prev)
}
func (statusStrategy) Validate(context.Context, runtime.Object) field.ErrorList { return nil }
func (statusStrategy) ValidateUpdate(_ context.Context, o, old runtime.Object) field.ErrorList {
	return ValidateStatusUpdate(o.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest))
}
func (statusStrategy) AllowCreateOnUpdate() bool { return false }

// approvalStrategy serves /approval: only status.conditions change.
type approvalStrategy struct{}

var _ registry.Strategy = &approvalStrategy{}

func (approvalStrategy) Default(o runtime.Object)                         { defaultCSR(o) }
func (approvalStrategy) PrepareForCreate(context.Context, runtime.Object) {}
func (approvalStrategy) PrepareForUpdate(_ context.Context, o, old runtime.Object) {
	csr, prev := o.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest)
	conds := csr.Status.Conditions
	csr.Spec = prev.Spec
	csr.Status = *prev.Status.DeepCopy()
	csr.Status.Conditions = conds
	populateTimestamps(csr, prev)
}
func (approvalStrategy) Validate(context.Context, runtime.Object) field.ErrorList { return nil }
func (approvalStrategy) ValidateUpdate(_ context.Context, o, old runtime.Object) field.ErrorList {
	return ValidateApprovalUpdate(o.(*certificatesv1.CertificateSigningRequest), old.(*certificatesv1.CertificateSigningRequest))
}
func (approvalStrategy) AllowCreateOnUpdate() bool { return false }
