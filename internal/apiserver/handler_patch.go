package apiserver

import (
	"fmt"
	"mime"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/apiserver/patch"
	"github.com/skiff-sh/skiff/internal/registry"
)

// patch serves PATCH of one object (every patch type and server-side
// apply).
func (s *Server) patch(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	s.patchWith(w, r, res, info, res.Strategy)
}

func (s *Server) patchWith(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo, strategy registry.Strategy) {
	out, created, err := s.patchObject(w, r, res, info, strategy)
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.respond(w, r, res, code, out)
}

// patchRequest is a parsed PATCH.
type patchRequest struct {
	params  writeParams
	typ     types.PatchType
	body    []byte
	force   bool
	manager string
}

func (s *Server) parsePatch(w http.ResponseWriter, r *http.Request) (*patchRequest, error) {
	params, err := parseWriteParams(r)
	if err != nil {
		return nil, err
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mt = r.Header.Get("Content-Type")
	}
	pt := types.PatchType(mt)
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType:
	default:
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", schemaGR(), "",
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s, %s",
				types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType), 0, false)
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, apierrors.NewBadRequest("the body of the request was empty")
	}
	var opts metav1.PatchOptions
	if err := decodeQuery(r.URL.Query(), &opts); err != nil {
		return nil, err
	}
	p := &patchRequest{params: params, typ: pt, body: body, force: opts.Force != nil && *opts.Force}
	var errs field.ErrorList
	if pt == types.ApplyYAMLPatchType {
		if params.FieldManager == "" {
			errs = append(errs, field.Required(field.NewPath("fieldManager"), "is required for apply patch"))
		}
		p.manager = params.FieldManager
	} else {
		if opts.Force != nil {
			errs = append(errs, field.Forbidden(field.NewPath("force"), "may not be specified for non-apply patch"))
		}
		p.manager = managerName(r, params)
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(metav1.SchemeGroupVersion.WithKind("PatchOptions").GroupKind(), "", errs)
	}
	return p, nil
}

// patchObject applies a PATCH to the object (or, for status, the object
// through the status strategy) and writes it.
func (s *Server) patchObject(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo, strategy registry.Strategy) (runtime.Object, bool, error) {
	p, err := s.parsePatch(w, r)
	if err != nil {
		return nil, false, err
	}
	allowCreate := p.typ == types.ApplyYAMLPatchType && info.Subresource == ""
	return s.updateObject(r.Context(), res, info, strategy, p.params.DryRun, allowCreate,
		func(current runtime.Object, exists bool) (runtime.Object, error) {
			if p.typ == types.ApplyYAMLPatchType {
				return s.applyPatch(res, info, current, exists, p)
			}
			if !exists {
				return nil, apierrors.NewNotFound(res.gr, info.Name)
			}
			if p.typ == types.StrategicMergePatchType {
				if next, ok := patch.StrategicStatus(current, res.gvk, p.body, res.New()); ok {
					return s.trackUpdate(res, info.Subresource, current, next, p.manager)
				}
			}
			currentJSON, err := s.encodeJSON(res.GroupVersion(), current)
			if err != nil {
				return nil, err
			}
			patched, err := patch.Apply(p.typ, currentJSON, p.body, res.New())
			if err != nil {
				return nil, err
			}
			next, err := s.decodeBytes(w, runtime.ContentTypeJSON, patched, res.gvk, res.New(), p.params.FieldValidation)
			if err != nil {
				return nil, err
			}
			return s.trackUpdate(res, info.Subresource, current, next, p.manager)
		})
}

// applyPatch runs server-side apply against the current object (an empty
// one with the request's name and namespace when absent).
func (s *Server) applyPatch(res *resource, info requestInfo, current runtime.Object, exists bool, p *patchRequest) (runtime.Object, error) {
	fm, err := res.fieldManager(info.Subresource)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	live := current
	if !exists {
		live = res.New()
		m, _ := meta.Accessor(live)
		m.SetName(info.Name)
		m.SetNamespace(info.Namespace)
	}
	return fm.Apply(live, p.body, p.manager, p.force)
}
