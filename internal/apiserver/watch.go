package apiserver

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// minWatchTimeout is kube-apiserver's --min-request-timeout: watches
// without timeoutSeconds last between it and twice it.
const minWatchTimeout = 30 * time.Minute

// watch streams changes of a collection (or one object) as WatchEvents.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	opts, so, err := s.listOptions(r, res)
	if err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	if info.Name != "" {
		so.Predicate.Field = fields.AndSelectors(so.Predicate.Field, fields.OneTermEqualSelector("metadata.name", info.Name))
	}
	ser, mt, ok := s.codecs.negotiateOutput(r, func(mt mediaType) bool { return acceptAs(mt) && (mt.As == "Table" || mt.As == "PartialObjectMetadata") })
	if !ok {
		s.writeNotAcceptable(w, r)
		return
	}
	if ser.StreamSerializer == nil {
		s.writeNotAcceptable(w, r)
		return
	}
	timeout := minWatchTimeout + time.Duration(rand.Int64N(int64(minWatchTimeout)))
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	var tableOpts metav1.TableOptions
	if mt.As == "Table" {
		if err := decodeQuery(r.URL.Query(), &tableOpts); err != nil {
			s.writeError(w, r, err, res.gr, "")
			return
		}
	}
	ctx, cancel := contextWithTimeout(r.Context(), timeout)
	defer cancel()
	wi, err := res.store.Watch(ctx, res.listKey(info.Namespace), so)
	if err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	defer wi.Stop()

	flusher, _ := w.(http.Flusher)
	contentType := ser.MediaType
	if ser.MediaType == runtime.ContentTypeProtobuf {
		contentType = ser.MediaType + ";stream=watch"
	}
	if mt.As != "" {
		contentType = ser.MediaType + ";as=" + mt.As + ";g=" + mt.Group + ";v=" + mt.Ver
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	frame := ser.StreamSerializer.Framer.NewFrameWriter(w)
	streamEnc := ser.StreamSerializer.Serializer
	objGV := res.GroupVersion()
	objEnc := scheme.Codecs.EncoderForVersion(ser.Serializer, objGV)
	omitMF := watchOmitsManagedFields(r.Context())
	if omitMF {
		objEnc = withoutManagedFields{objEnc}
	}
	statusEnc := scheme.Codecs.EncoderForVersion(ser.Serializer, schema.GroupVersion{Version: "v1"})
	tableEnc := scheme.Codecs.EncoderForVersion(ser.Serializer, schema.GroupVersion{Group: "meta.k8s.io", Version: mt.Ver})
	headersSent := false
	var buf bytes.Buffer
	// One allocator for the watch's encodings (as upstream's watch
	// encoder): each encoding is copied out (into buf, the shared event's
	// cache or the response) before the next one reuses the memory.
	alloc := &runtime.Allocator{}
	ch := wi.ResultChan()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			buf.Reset()
			obj := ev.Object
			if co, ok := obj.(runtime.CacheableObject); ok && (mt.As != "" || ev.Type == watch.Error) {
				// Shared with other watchers: tables need the object
				// itself, as a copy; metadata only reads it (the
				// garbage collector's informers watch every resource so).
				if so, ok := co.(sharedObject); ok && mt.As == "PartialObjectMetadata" && ev.Type != watch.Error {
					obj = so.SharedObject()
				} else {
					obj = co.GetObject()
				}
			}
			enc := objEnc
			switch {
			case ev.Type == watch.Error:
				if _, isStatus := obj.(*metav1.Status); !isStatus {
					st := apierrors.NewInternalError(errFromObject(obj)).Status()
					obj = &st
				}
				enc = statusEnc
			case mt.As == "Table":
				if ev.Type == watch.Bookmark {
					t := &metav1.Table{}
					if m, err := meta.Accessor(obj); err == nil {
						t.ResourceVersion = m.GetResourceVersion()
					}
					obj = t
				} else {
					t, err := s.toTable(res, obj, tableOpts.IncludeObject, !headersSent)
					if err != nil {
						return
					}
					headersSent = true
					obj = t
				}
				enc = tableEnc
			case mt.As == "PartialObjectMetadata":
				p, err := partialMetadata(obj, res)
				if err != nil {
					return
				}
				if omitMF {
					p.ManagedFields = nil // p is this watch's own
				}
				obj, enc = p, tableEnc
			}
			if err := encodeWith(enc, obj, &buf, alloc); err != nil {
				s.log.Debug("encode watch event", "err", err)
				return
			}
			raw := buf.Bytes()
			if ser.MediaType == runtime.ContentTypeJSON {
				raw = bytes.TrimRight(raw, "\n")
			}
			event := &metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: raw}}
			if err := encodeWith(streamEnc, event, frame, alloc); err != nil {
				return
			}
			if flusher != nil && len(ch) == 0 {
				flusher.Flush()
			}
		}
	}
}

// encodeWith encodes with alloc's memory when the encoder can.
func encodeWith(e runtime.Encoder, obj runtime.Object, w io.Writer, alloc runtime.MemoryAllocator) error {
	if ea, ok := e.(runtime.EncoderWithAllocator); ok {
		return ea.EncodeWithAllocator(obj, w, alloc)
	}
	return e.Encode(obj, w)
}

type objectError struct{ obj runtime.Object }

func (e objectError) Error() string { return "watch error" }

func errFromObject(obj runtime.Object) error { return objectError{obj} }

// sharedObject is a watch cache object that can be read without a copy.
type sharedObject interface {
	SharedObject() runtime.Object
}

// withoutManagedFields encodes objects without their managedFields (see
// WatchesWithoutManagedFields). A watch cache object keeps that encoding
// beside its full one, under an identifier of its own.
type withoutManagedFields struct{ runtime.Encoder }

var (
	_ runtime.Encoder              = withoutManagedFields{}
	_ runtime.EncoderWithAllocator = withoutManagedFields{}
)

func (e withoutManagedFields) Identifier() runtime.Identifier {
	return e.Encoder.Identifier() + ",withoutManagedFields"
}

func (e withoutManagedFields) Encode(obj runtime.Object, w io.Writer) error {
	return e.EncodeWithAllocator(obj, w, nil)
}

func (e withoutManagedFields) EncodeWithAllocator(obj runtime.Object, w io.Writer, alloc runtime.MemoryAllocator) error {
	encode := func(obj runtime.Object, w io.Writer) error {
		if ea, ok := e.Encoder.(runtime.EncoderWithAllocator); ok && alloc != nil {
			return ea.EncodeWithAllocator(obj, w, alloc)
		}
		return e.Encoder.Encode(obj, w)
	}
	if co, ok := obj.(runtime.CacheableObject); ok {
		// A cacheable object hands each encoding its own copy (the
		// encoders set its type meta): its metadata can be cleared there.
		return co.CacheEncode(e.Identifier(), func(obj runtime.Object, w io.Writer) error {
			if _, ok := obj.(runtime.Unstructured); !ok {
				if m, err := meta.Accessor(obj); err == nil {
					m.SetManagedFields(nil)
				}
			}
			return encode(obj, w)
		}, w)
	}
	return encode(stripManagedFields(obj), w)
}

// stripManagedFields returns obj, or a copy of its top-level struct without
// managedFields when it has some: obj itself may be shared.
func stripManagedFields(obj runtime.Object) runtime.Object {
	if _, ok := obj.(runtime.Unstructured); ok {
		return obj // a shallow copy would share its map
	}
	m, err := meta.Accessor(obj)
	if err != nil || len(m.GetManagedFields()) == 0 {
		return obj
	}
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return obj
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	cp, ok := c.Interface().(runtime.Object)
	if !ok {
		return obj
	}
	if cm, err := meta.Accessor(cp); err == nil {
		cm.SetManagedFields(nil)
		return cp
	}
	return obj
}
