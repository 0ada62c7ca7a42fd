package etcd

import (
	"bytes"
	"errors"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// DefaultCodec stores objects of gv as protobuf (with the Kubernetes magic
// prefix, as kube-apiserver does) and decodes protobuf or JSON.
func DefaultCodec(gv schema.GroupVersion) runtime.Codec {
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	return storageCodec{Codec: scheme.Codecs.CodecForVersions(pb, scheme.Codecs.UniversalDeserializer(), gv, gv)}
}

// storageCodec decodes the common case, a protobuf value of exactly the
// type asked for, without the runtime.Unknown the protobuf serializer
// unmarshals first: that copies every stored object's bytes once more
// before the object itself is unmarshalled from them, on every read and
// every watch event. Anything else (JSON, another kind or version that
// needs conversion, objects with nested raw objects) takes the codec's path.
type storageCodec struct {
	runtime.Codec
}

// protobufPrefix starts every value kube-apiserver's protobuf serializer
// writes.
var protobufPrefix = []byte{0x6b, 0x38, 0x73, 0x00} // "k8s\x00"

// typedMessage is what gogo-generated Kubernetes types implement.
type typedMessage interface {
	runtime.Object
	Reset()
	Unmarshal([]byte) error
}

func (c storageCodec) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if defaults == nil {
		if gvk, ok, err := decodeTyped(data, into); ok {
			if err != nil {
				return nil, gvk, err
			}
			return into, gvk, nil
		}
	}
	return c.Codec.Decode(data, defaults, into)
}

// decodeTyped unmarshals a protobuf value into into when the value's
// apiVersion and kind are into's own, with the result the codec would give
// (type meta set, scheme defaults applied). ok is false when it does not
// apply and nothing was changed.
func decodeTyped(data []byte, into runtime.Object) (gvk *schema.GroupVersionKind, ok bool, err error) {
	m, isMsg := into.(typedMessage)
	if !isMsg || !bytes.HasPrefix(data, protobufPrefix) {
		return nil, false, nil
	}
	switch into.(type) {
	case runtime.Unstructured, *runtime.Unknown, runtime.NestedObjectDecoder:
		return nil, false, nil
	}
	apiVersion, kind, raw, parsed := parseUnknown(data[len(protobufPrefix):])
	if !parsed || apiVersion == "" || kind == "" {
		return nil, false, nil
	}
	kinds, _, err := scheme.Scheme.ObjectKinds(into)
	if err != nil || len(kinds) == 0 {
		return nil, false, nil
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil || gv.Version == "" {
		return nil, false, nil
	}
	actual := gv.WithKind(kind)
	if actual != kinds[0] {
		return nil, false, nil
	}
	m.Reset()
	if err := m.Unmarshal(raw); err != nil {
		return &actual, true, err
	}
	into.GetObjectKind().SetGroupVersionKind(actual)
	scheme.Scheme.Default(into)
	return &actual, true, nil
}

// parseUnknown reads the runtime.Unknown envelope (1: typeMeta {1:
// apiVersion, 2: kind}, 2: raw, 3: contentEncoding, 4: contentType) without
// copying raw.
func parseUnknown(b []byte) (apiVersion, kind string, raw []byte, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", nil, false
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", "", nil, false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", "", nil, false
		}
		b = b[n:]
		switch num {
		case 1:
			var err error
			if apiVersion, kind, err = parseTypeMeta(v); err != nil {
				return "", "", nil, false
			}
		case 2:
			raw = v
		}
	}
	return apiVersion, kind, raw, true
}

func parseTypeMeta(b []byte) (apiVersion, kind string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", errors.New("bad tag")
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", "", errors.New("bad field")
		}
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			switch num {
			case 1:
				apiVersion = string(v)
			case 2:
				kind = string(v)
			}
		}
		b = b[n:]
	}
	return apiVersion, kind, nil
}

// encode returns obj's encoding. The protobuf serializer of storageCodec
// builds the whole value in a buffer from its allocator and writes it once:
// with a fresh allocator per value the bytes are taken as they are,
// instead of being copied into a second, growing buffer. Other encoders
// may write from buffers they reuse, so their output is copied.
func encode(c runtime.Encoder, obj runtime.Object) ([]byte, error) {
	if sc, ok := c.(storageCodec); ok {
		if ea, ok := sc.Codec.(runtime.EncoderWithAllocator); ok {
			var w takeWriter
			if err := ea.EncodeWithAllocator(obj, &w, &runtime.SimpleAllocator{}); err != nil {
				return nil, err
			}
			return w.data, nil
		}
	}
	var buf bytes.Buffer
	if err := c.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// takeWriter keeps the slice of a single Write, whose writer hands it
// over, and copies only when written to again.
type takeWriter struct {
	data  []byte
	owned bool // data is a copy of ours
}

func (w *takeWriter) Write(p []byte) (int, error) {
	switch {
	case w.data == nil:
		w.data = p
	case !w.owned:
		w.data = append(append(make([]byte, 0, len(w.data)+len(p)), w.data...), p...)
		w.owned = true
	default:
		w.data = append(w.data, p...)
	}
	return len(p), nil
}

var _ io.Writer = (*takeWriter)(nil)
