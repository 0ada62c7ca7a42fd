package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/api/scheme"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/cacher"
)

// cachedLister is a store that hands out list pages whose objects keep
// their encodings (the watch cache).
type cachedLister interface {
	ListCached(ctx context.Context, prefix string, opts storage.ListOptions) (*cacher.CachedList, bool, error)
}

// protobufMagic starts every protobuf encoding of the Kubernetes
// serializer, ahead of a runtime.Unknown.
var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}

// listSplice writes a list of a resource from its items' cached
// encodings instead of encoding every item again: the bytes are those the
// serializer writes for the typed list (JSON: the list's kind, apiVersion
// and metadata, then each item's encoding without its kind and apiVersion;
// protobuf: a runtime.Unknown around the list's fields with each item's
// raw message).
type listSplice struct {
	info     runtime.SerializerInfo
	gv       schema.GroupVersion
	itemKind string
	listKind string
}

// errNotSpliceable means an item's encoding is not in the expected shape:
// the caller encodes the list the ordinary way.
var errNotSpliceable = errors.New("list items cannot be spliced")

// spliceFormat reports whether a negotiated response format can be
// spliced: plain JSON or protobuf, no as= conversion.
func spliceFormat(info runtime.SerializerInfo, mt mediaType) bool {
	return mt.As == "" && (info.MediaType == runtime.ContentTypeJSON || info.MediaType == runtime.ContentTypeProtobuf)
}

// captureWriter keeps what an encoder writes; a single write (a cached
// encoding) is kept without a copy.
type captureWriter struct {
	b      []byte
	copied bool
}

func (c *captureWriter) Write(p []byte) (int, error) {
	switch {
	case c.b == nil:
		c.b = p
	case !c.copied:
		c.b = append(append([]byte(nil), c.b...), p...)
		c.copied = true
	default:
		c.b = append(c.b, p...)
	}
	return len(p), nil
}

// items returns each item's part of the list's encoding. The slices may
// be the items' cached encodings: read-only.
func (l *listSplice) items(objs []runtime.Object) ([][]byte, int, error) {
	enc := scheme.Codecs.EncoderForVersion(l.info.Serializer, l.gv)
	out := make([][]byte, len(objs))
	total := 0
	var jsonPrefix []byte
	if l.info.MediaType == runtime.ContentTypeJSON {
		k, _ := json.Marshal(l.itemKind)
		v, _ := json.Marshal(l.gv.String())
		jsonPrefix = []byte(`{"kind":` + string(k) + `,"apiVersion":` + string(v) + `,`)
	}
	for i, obj := range objs {
		var cw captureWriter
		if err := enc.Encode(obj, &cw); err != nil {
			return nil, 0, err
		}
		raw := cw.b
		if jsonPrefix != nil {
			// {"kind":"Pod","apiVersion":"v1",...}\n -> {...}
			if !bytes.HasPrefix(raw, jsonPrefix) || !bytes.HasSuffix(raw, []byte("}\n")) {
				return nil, 0, errNotSpliceable
			}
			raw = raw[len(jsonPrefix)-1 : len(raw)-1]
			out[i] = raw // its first byte is the prefix's comma: written as '{'
		} else {
			r, err := unknownRaw(raw)
			if err != nil {
				return nil, 0, err
			}
			out[i] = r
		}
		total += len(out[i])
	}
	return out, total, nil
}

// unknownRaw returns the raw message of a protobuf encoding (the
// runtime.Unknown's field 2).
func unknownRaw(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, protobufMagic) {
		return nil, errNotSpliceable
	}
	b = b[len(protobufMagic):]
	var raw []byte
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 || tag&7 != 2 {
			return nil, errNotSpliceable
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < size {
			return nil, errNotSpliceable
		}
		field := b[n : n+int(size)]
		b = b[n+int(size):]
		switch tag >> 3 {
		case 2:
			raw = field
		case 3, 4: // contentEncoding, contentType: empty for a plain object
			if len(field) != 0 {
				return nil, errNotSpliceable
			}
		}
	}
	if raw == nil {
		return nil, errNotSpliceable
	}
	return raw, nil
}

// write encodes the list page to w, with the response headers.
func (l *listSplice) write(w http.ResponseWriter, code int, page *cacher.CachedList) error {
	items, total, err := l.items(page.Items)
	if err != nil {
		return err
	}
	lm := metav1.ListMeta{ResourceVersion: page.ResourceVersion, Continue: page.Continue, RemainingItemCount: page.RemainingItemCount}
	var head, tail []byte
	var sep func(item []byte) []byte // what precedes an item
	if l.info.MediaType == runtime.ContentTypeJSON {
		meta, err := json.Marshal(&lm)
		if err != nil {
			return err
		}
		k, _ := json.Marshal(l.listKind)
		v, _ := json.Marshal(l.gv.String())
		head = []byte(`{"kind":` + string(k) + `,"apiVersion":` + string(v) + `,"metadata":` + string(meta) + `,"items":[`)
		tail = []byte("]}\n")
		total += len(items) // an item's leading comma is replaced, separators added
		if len(items) > 0 {
			total-- // the first item has no separator
		}
		sep = nil
	} else {
		meta, err := lm.Marshal()
		if err != nil {
			return err
		}
		body := appendField(nil, 1, len(meta))
		body = append(body, meta...)
		bodyLen := len(body) + total
		var prefix [binary.MaxVarintLen64 + 1]byte
		for _, it := range items {
			bodyLen += len(appendField(prefix[:0], 2, len(it)))
		}
		tm, err := (&runtime.TypeMeta{APIVersion: l.gv.String(), Kind: l.listKind}).Marshal()
		if err != nil {
			return err
		}
		head = append([]byte(nil), protobufMagic...)
		head = appendField(head, 1, len(tm))
		head = append(head, tm...)
		head = appendField(head, 2, bodyLen)
		head = append(head, body...)
		tail = []byte{0x1a, 0x00, 0x22, 0x00} // empty contentEncoding and contentType
		total = bodyLen - len(body)
		sep = func(item []byte) []byte { return appendField(prefix[:0], 2, len(item)) }
	}
	w.Header().Set("Content-Type", l.info.MediaType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(head)+total+len(tail)))
	w.WriteHeader(code)
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.Write(head)
	for i, it := range items {
		if sep == nil {
			if i > 0 {
				_ = bw.WriteByte(',')
			}
			_ = bw.WriteByte('{')
			_, _ = bw.Write(it[1:])
			continue
		}
		_, _ = bw.Write(sep(it))
		_, _ = bw.Write(it)
	}
	_, _ = bw.Write(tail)
	return bw.Flush()
}

// appendField appends a length-delimited field's tag and length.
func appendField(b []byte, field, size int) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	return binary.AppendUvarint(b, uint64(size))
}

// newListSplice returns the splicer of a resource's lists, or false for
// resources whose lists are encoded the ordinary way (unstructured ones).
func newListSplice(res *resource, info runtime.SerializerInfo) (*listSplice, bool) {
	list := res.NewList()
	if _, ok := list.(runtime.Unstructured); ok {
		return nil, false
	}
	kinds, _, err := scheme.Scheme.ObjectKinds(list)
	if err != nil || len(kinds) == 0 {
		return nil, false
	}
	return &listSplice{info: info, gv: res.GroupVersion(), itemKind: res.gvk.Kind, listKind: kinds[0].Kind}, true
}
