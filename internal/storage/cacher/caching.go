package cacher

import (
	"bytes"
	"io"
	"reflect"
	"sync"
	"sync/atomic"

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
//
// The cache's current objects are cachingObjects too (newHeldObject): their
// encodings outlive the event, for the next watch's initial events and for
// lists (ListCached), within the cache's encodingBudget.
type cachingObject struct {
	obj runtime.Object
	// budget, if set, counts the encodings this object keeps while it is
	// the cache's current object; when the budget is spent, encodings not
	// yet made are written without being kept.
	budget *encodingBudget

	mu       sync.Mutex
	enc      map[runtime.Identifier]*encoding
	kept     int64 // bytes counted in budget
	released bool  // no longer current: nothing more is counted
}

type encoding struct {
	once sync.Once
	raw  []byte
	err  error
}

func newCachingObject(obj runtime.Object) *cachingObject { return &cachingObject{obj: obj} }

// newHeldObject wraps one of the cache's current objects.
func newHeldObject(obj runtime.Object, b *encodingBudget) *cachingObject {
	return &cachingObject{obj: obj, budget: b}
}

// encodingBudget bounds the bytes of encodings kept by a cache's objects.
type encodingBudget struct {
	limit int64
	used  atomic.Int64
}

func (b *encodingBudget) spent() bool { return b.used.Load() >= b.limit }

// release gives the object's encodings back to the budget: it is no longer
// the cache's current object (events in flight may still use them).
func (o *cachingObject) release() {
	if o.budget == nil {
		return
	}
	o.mu.Lock()
	o.released = true
	o.budget.used.Add(-o.kept)
	o.kept = 0
	o.mu.Unlock()
}

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
		if o.budget != nil && !o.released && o.budget.spent() {
			o.mu.Unlock()
			return encode(shallowCopy(o.obj), w)
		}
		e = &encoding{}
		o.enc[id] = e
	}
	o.mu.Unlock()
	e.once.Do(func() {
		var buf bytes.Buffer
		e.err = encode(shallowCopy(o.obj), &buf)
		e.raw = buf.Bytes()
		if o.budget != nil {
			o.mu.Lock()
			if !o.released {
				o.kept += int64(cap(e.raw))
				o.budget.used.Add(int64(cap(e.raw)))
			}
			o.mu.Unlock()
		}
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
