package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/storage"
)

// toAPIError turns any error into a *apierrors.StatusError: API errors
// pass through, storage sentinels become upstream's codes, anything else is
// an internal error (a bug, never client input).
func toAPIError(err error, gr schema.GroupResource, name string) *apierrors.StatusError {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return se
	}
	var ke *storage.KeyError
	switch {
	case storage.IsNotFound(err):
		return apierrors.NewNotFound(gr, name)
	case storage.IsExists(err):
		return apierrors.NewAlreadyExists(gr, name)
	case storage.IsConflict(err):
		msg := "the object has been modified; please apply your changes to the latest version and try again"
		if errors.As(err, &ke) && ke.Msg != "" && ke.Msg != msg {
			msg = ke.Msg
		}
		return apierrors.NewConflict(gr, name, errors.New(msg))
	case storage.IsExpired(err):
		msg := "The resourceVersion for the provided list is too old."
		if errors.As(err, &ke) && ke.Msg != "" {
			msg = ke.Msg
		}
		return apierrors.NewResourceExpired(msg)
	case errors.Is(err, storage.ErrTooLargeResourceVersion):
		return apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %v", err), 1)
	case errors.Is(err, storage.ErrInvalidContinue), errors.Is(err, storage.ErrInvalidResourceVersion):
		return apierrors.NewBadRequest(err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apierrors.NewTimeoutError(fmt.Sprintf("request did not complete: %v", err), 0)
	}
	return apierrors.NewInternalError(err)
}

// writeError sends err as a Status body with its code.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error, gr schema.GroupResource, name string) {
	se := toAPIError(err, gr, name)
	status := se.Status()
	if status.Code >= 500 && status.Reason != metav1.StatusReasonTimeout {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s.writeStatus(w, r, &status)
}

func (s *Server) writeStatus(w http.ResponseWriter, r *http.Request, status *metav1.Status) {
	status.Kind, status.APIVersion = "Status", "v1"
	if status.Status == "" {
		status.Status = metav1.StatusFailure
	}
	code := int(status.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	if status.Details != nil && status.Details.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(status.Details.RetryAfterSeconds))
	}
	s.writeObject(w, r, code, status)
}
