package apiserver

import (
	"mime"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// mediaType is one entry of an Accept header.
type mediaType struct {
	Type   string // application/json
	As     string // Table, PartialObjectMetadata, PartialObjectMetadataList, APIGroupDiscoveryList
	Group  string // g=
	Ver    string // v=
	Stream string
}

func parseAccept(header string) []mediaType {
	if header == "" {
		return []mediaType{{Type: "application/json"}}
	}
	var out []mediaType
	for _, part := range strings.Split(header, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		out = append(out, mediaType{Type: mt, As: params["as"], Group: params["g"], Ver: params["v"], Stream: params["stream"]})
	}
	return out
}

// codecs holds the serializers the server speaks.
type codecs struct {
	lenient serializer.CodecFactory
	strict  serializer.CodecFactory
}

func newCodecs() *codecs {
	return &codecs{
		lenient: scheme.Codecs,
		strict:  serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict),
	}
}

// serializerFor picks the response serializer for a media type. "*/*",
// "application/*" and an empty type mean JSON.
func (c *codecs) serializerFor(mt string) (runtime.SerializerInfo, bool) {
	switch mt {
	case "", "*/*", "application/*":
		mt = runtime.ContentTypeJSON
	}
	return runtime.SerializerInfoForMediaType(c.lenient.SupportedMediaTypes(), mt)
}

// negotiateOutput chooses the response format for an object response.
// It returns the serializer, the media type entry (for as=Table etc.) and
// false if nothing in Accept is acceptable (406).
func (c *codecs) negotiateOutput(r *http.Request, allowAs func(mediaType) bool) (runtime.SerializerInfo, mediaType, bool) {
	for _, mt := range parseAccept(r.Header.Get("Accept")) {
		if mt.As != "" && (allowAs == nil || !allowAs(mt)) {
			continue
		}
		if info, ok := c.serializerFor(mt.Type); ok {
			// CBOR is not served yet; prefer the next entry.
			if strings.Contains(info.MediaType, "cbor") {
				continue
			}
			return info, mt, true
		}
	}
	return runtime.SerializerInfo{}, mediaType{}, false
}

// encode writes obj with the versioning encoder for gv, so apiVersion and
// kind are set from the scheme.
func encodeObject(info runtime.SerializerInfo, gv schema.GroupVersion, obj runtime.Object, w interface{ Write([]byte) (int, error) }) error {
	enc := scheme.Codecs.EncoderForVersion(info.Serializer, gv)
	return enc.Encode(obj, w)
}

// writeObject encodes obj in the negotiated format. Status and other
// meta.k8s.io objects use their own versions.
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, code int, obj runtime.Object) {
	info, _, ok := s.codecs.negotiateOutput(r, func(mediaType) bool { return false })
	if !ok {
		info, _ = s.codecs.serializerFor(runtime.ContentTypeJSON)
	}
	s.writeObjectWith(w, code, info, schema.GroupVersion{}, obj)
}

// writeObjectWith encodes obj at gv; a zero gv means the object's own
// (Status is always v1).
func (s *Server) writeObjectWith(w http.ResponseWriter, code int, info runtime.SerializerInfo, gv schema.GroupVersion, obj runtime.Object) {
	if gv.Empty() {
		if _, isStatus := obj.(*metav1.Status); isStatus {
			gv = schema.GroupVersion{Version: "v1"}
		} else if gvks, _, err := scheme.Scheme.ObjectKinds(obj); err == nil && len(gvks) > 0 {
			gv = gvks[0].GroupVersion()
		}
	}
	w.Header().Set("Content-Type", info.MediaType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if err := encodeObject(info, gv, obj, w); err != nil {
		s.log.Debug("encode response", "err", err)
	}
}

// decoderFor returns the request body decoder for a Content-Type, strict
// or lenient. ok is false for an unsupported media type (415).
func (c *codecs) decoderFor(contentType string, strict bool) (runtime.Decoder, string, bool) {
	mt := contentType
	if parsed, _, err := mime.ParseMediaType(contentType); err == nil {
		mt = parsed
	}
	if mt == "" {
		mt = runtime.ContentTypeJSON
	}
	f := c.lenient
	if strict {
		f = c.strict
	}
	info, ok := runtime.SerializerInfoForMediaType(f.SupportedMediaTypes(), mt)
	if !ok {
		return nil, mt, false
	}
	if strict && info.StrictSerializer != nil {
		return info.StrictSerializer, mt, true
	}
	return info.Serializer, mt, true
}
