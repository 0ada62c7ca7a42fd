package cacher

import (
	"bytes"
	"io"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// cachingObject is what watchers receive instead of a copy of each object,
// as upstream's watch cache does: one event's object is shared by every
// watcher and serialized once per encoder (runtime.CacheableObject, which
// the JSON, protobuf and versioning encoders recognize). Encoders set
// TypeMeta while they write, so each encoding works on its own copy and
// the shared object is never touched (a shallow copy is enough: encoders
// only set the top-level TypeMeta); consumers that need the object
// itself call GetObject, which returns a copy.
type cachingObject struct {
	obj runtime.Object

	mu  sync.Mutex
	enc map[runtime.Identifier]*encoding
}

type encoding struct {
	once sync.Once
	raw  []byte
	err  error
}

func newCachingObject(obj runtime.Object) *cachingObject { return &cachingObject{obj: obj} }

var (
	_ runtime.CacheableObject = (*cachingObject)(nil)
	_ runtime.Object          = (*cachingObject)(nil)
)

// CacheEncode writes obj as encode would, encoding at most once per id.
func (o *cachingObject) CacheEncode(id runtime.Identifier, encode func(runtime.Object, io.Writer) error, w io.Writer) error {
	o.mu.Lock()
	if o.enc == nil {
		o.enc = map[runtime.Identifier]*encoding{}
	}
	e := o.enc[id]
	if e == nil {
		e = &encoding{}
		o.enc[id] = e
	}
	o.mu.Unlock()
	e.once.Do(func() {
		var buf bytes.Buffer
		e.err = encode(shallowCopy(o.obj), &buf)
		e.raw = buf.Bytes()
	})
	if e.err != nil {
		return e.err
	}
	_, err := w.Write(e.raw)
	return err
}

// GetObject returns a copy the caller may change.
func (o *cachingObject) GetObject() runtime.Object { return o.obj.DeepCopyObject() }

// SharedObject returns the shared object itself, for a caller that only
// reads it (e.g. copies its metadata) and never changes it or its kind:
// no deep copy per watcher.
func (o *cachingObject) SharedObject() runtime.Object { return o.obj }

// GetObjectKind gives read-only access to the shared object's kind: the
// watch cache's objects have an empty TypeMeta and nobody may set it.
func (o *cachingObject) GetObjectKind() schema.ObjectKind { return readOnlyKind{o.obj.GetObjectKind()} }

func (o *cachingObject) DeepCopyObject() runtime.Object { return o.obj.DeepCopyObject() }

type readOnlyKind struct{ k schema.ObjectKind }

func (r readOnlyKind) GroupVersionKind() schema.GroupVersionKind { return r.k.GroupVersionKind() }
func (r readOnlyKind) SetGroupVersionKind(schema.GroupVersionKind) {
	// The shared object stays as it is; encoders work on copies.
}

// shallowCopy copies the top-level struct of a pointer-to-struct object,
// sharing everything it points to; anything else is deep-copied.
func shallowCopy(obj runtime.Object) runtime.Object {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return obj.DeepCopyObject()
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	if out, ok := c.Interface().(runtime.Object); ok {
		return out
	}
	return obj.DeepCopyObject()
}
