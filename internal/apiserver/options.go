package apiserver

import (
	"fmt"
	"net/http"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// decodeQuery fills an options struct (metav1.ListOptions, CreateOptions,
// ...) from the query string, with 400 on malformed values.
func decodeQuery(q url.Values, into runtime.Object) error {
	// Option types live in different versions of the scheme (ListOptions
	// in every group version, TableOptions only in meta.k8s.io/v1).
	gv := schema.GroupVersion{Version: "v1"}
	if kinds, _, err := scheme.Scheme.ObjectKinds(into); err == nil && len(kinds) > 0 {
		gv = kinds[0].GroupVersion()
		for _, k := range kinds {
			if k.GroupVersion() == (schema.GroupVersion{Version: "v1"}) {
				gv = k.GroupVersion()
			}
		}
	}
	if err := scheme.ParameterCodec.DecodeParameters(q, gv, into); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid query parameters: %v", err))
	}
	return nil
}

// writeParams are the query parameters every write accepts.
type writeParams struct {
	DryRun          bool
	FieldManager    string
	FieldValidation string // Strict, Warn, Ignore
}

func parseWriteParams(r *http.Request) (writeParams, error) {
	q := r.URL.Query()
	var p writeParams
	for _, v := range q["dryRun"] {
		if v != metav1.DryRunAll {
			return p, apierrors.NewBadRequest(fmt.Sprintf("Invalid dryRun value: %q, supported values: All", v))
		}
		p.DryRun = true
	}
	p.FieldManager = q.Get("fieldManager")
	if len(p.FieldManager) > 128 {
		return p, apierrors.NewBadRequest("fieldManager: Too long: may not be longer than 128 characters")
	}
	p.FieldValidation = q.Get("fieldValidation")
	switch p.FieldValidation {
	case "":
		p.FieldValidation = metav1.FieldValidationWarn
	case metav1.FieldValidationStrict, metav1.FieldValidationWarn, metav1.FieldValidationIgnore:
	default:
		return p, apierrors.NewBadRequest(fmt.Sprintf("Invalid fieldValidation value: %q, supported values: Ignore, Warn, Strict", p.FieldValidation))
	}
	return p, nil
}
