package apiserver

import (
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// reviewVerbs are what discovery lists for a create-only review.
var reviewVerbs = []string{"create"}

// verbs lists the resource's verbs for discovery.
func (r *resource) verbs() []string {
	if r.Review != nil {
		return reviewVerbs
	}
	return defaultVerbs
}

// serveReview answers a POST to a review resource (registry.Resource's
// Review): decode, default, validate, review, respond 201 as upstream;
// nothing is stored. Other verbs get 405.
func (s *Server) serveReview(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	if info.Verb != "create" || info.Name != "" || info.Subresource != "" {
		s.methodNotAllowed(w, r)
		return
	}
	obj, _, err := s.decodeWrite(w, r, res.gvk, res.New())
	if err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	if res.Strategy != nil {
		res.Strategy.Default(obj)
		if errs := res.Strategy.Validate(r.Context(), obj); len(errs) > 0 {
			s.writeError(w, r, apierrors.NewInvalid(res.gvk.GroupKind(), "", errs), res.gr, "")
			return
		}
	}
	out, err := res.Review(r.Context(), obj)
	if err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	s.respond(w, r, res, http.StatusCreated, out)
}
