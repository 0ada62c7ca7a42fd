package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// presizedBodyBytes is the largest Content-Length a body buffer is
// allocated for up front.
const presizedBodyBytes = 1 << 20

// readBody reads the request body up to kube-apiserver's limit.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	lr := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	var body []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= presizedBodyBytes {
		// Sized once from Content-Length (io.ReadAll grows from 512
		// bytes, several copies for a typical object); larger claims
		// are not trusted with memory before their bytes arrive.
		buf := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
		_, err = buf.ReadFrom(lr)
		body = buf.Bytes()
	} else {
		body, err = io.ReadAll(lr)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("unable to read request body: %v", err))
	}
	return body, nil
}

// decodeWrite reads a write's parameters and body and decodes the body as
// decodeInto does: the shared start of every handler that takes an object.
func (s *Server) decodeWrite(w http.ResponseWriter, r *http.Request, want schema.GroupVersionKind, into runtime.Object) (runtime.Object, writeParams, error) {
	params, err := parseWriteParams(r)
	if err != nil {
		return nil, params, err
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, params, err
	}
	obj, err := s.decodeInto(w, r, body, want, into, params.FieldValidation)
	return obj, params, err
}

// decodeInto decodes a request body of the resource's kind (or the given
// kind for subresources), applying fieldValidation: Strict turns unknown
// and duplicate fields into 400, Warn into Warning headers, Ignore drops
// them.
func (s *Server) decodeInto(w http.ResponseWriter, r *http.Request, body []byte, want schema.GroupVersionKind,
	into runtime.Object, validation string) (runtime.Object, error) {
	return s.decodeBytes(w, r.Header.Get("Content-Type"), body, want, into, validation)
}

// decodeBytes is decodeInto with an explicit content type.
func (s *Server) decodeBytes(w http.ResponseWriter, contentType string, body []byte, want schema.GroupVersionKind,
	into runtime.Object, validation string) (runtime.Object, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, apierrors.NewBadRequest("the body of the request was empty")
	}
	dec, mt, ok := s.codecs.decoderFor(contentType, true)
	if !ok {
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "",
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got %q)", mt), 0, false)
	}
	obj, gvk, err := dec.Decode(body, &want, into)
	if err != nil {
		strictErr, isStrict := runtime.AsStrictDecodingError(err)
		if !isStrict || obj == nil {
			return nil, apierrors.NewBadRequest(decodeMessage(err))
		}
		switch validation {
		case metav1.FieldValidationStrict:
			return nil, apierrors.NewBadRequest(strictErr.Error())
		case metav1.FieldValidationWarn:
			for _, e := range strictErr.Errors() {
				addWarning(w, e.Error())
			}
		}
	}
	if gvk != nil && (gvk.Group != want.Group || gvk.Version != want.Version) && gvk.GroupVersion() != (schema.GroupVersion{}) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)",
			gvk.GroupVersion().String(), want.GroupVersion().String()))
	}
	if gvk != nil && gvk.Kind != "" && gvk.Kind != want.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", gvk.Kind, want.Kind))
	}
	if obj != into {
		// The decoder chose another Go type (e.g. a different kind
		// registered under the same name); refuse rather than guess.
		if fmt.Sprintf("%T", obj) != fmt.Sprintf("%T", into) {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("unexpected object of type %T", obj))
		}
	}
	return obj, nil
}

func decodeMessage(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "Object 'Kind' is missing") {
		return msg
	}
	return fmt.Sprintf("error decoding request body: %s", msg)
}

// addWarning adds an RFC 7234 warning header as kube-apiserver does.
func addWarning(w http.ResponseWriter, text string) {
	w.Header().Add("Warning", "299 - "+strconv.Quote(text))
}
