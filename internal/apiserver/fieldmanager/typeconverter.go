package fieldmanager

import (
	"reflect"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/schema"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// fastConverter wraps the scheme's type converter for the update path.
// Updates (managedFields of creates, PUTs, PATCHes) convert built-in Go
// structs with typed.AllowDuplicates, where validation can only re-check
// what the Go type already guarantees, and the comparison that follows
// walks the same schema and reports any mismatch itself. So for those it
// skips the validating walk (a full extra pass, a third of the managed
// fields cost of a create) and the per-call schema name lookup. Applied
// configurations and unstructured objects keep the validating path.
type fastConverter struct {
	inner managedfields.TypeConverter
	types sync.Map // typeKey -> parseable
}

type typeKey struct {
	t   reflect.Type
	gvk k8sschema.GroupVersionKind
}

type parseable struct {
	schema  *schema.Schema
	typeRef schema.TypeRef
}

var _ managedfields.TypeConverter = (*fastConverter)(nil)

func (c *fastConverter) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	if _, ok := obj.(*unstructured.Unstructured); ok || !allowsDuplicates(opts) {
		return c.inner.ObjectToTyped(obj, opts...)
	}
	rt := typeKey{reflect.TypeOf(obj), obj.GetObjectKind().GroupVersionKind()}
	p, ok := c.types.Load(rt)
	if !ok {
		// The schema and root type of a kind, from the validating
		// converter (the kind is set by the caller as upstream needs).
		tv, err := c.inner.ObjectToTyped(obj, opts...)
		if err != nil {
			return nil, err
		}
		c.types.Store(rt, parseable{schema: tv.Schema(), typeRef: tv.TypeRef()})
		return tv, nil
	}
	v, err := value.NewValueReflect(obj)
	if err != nil {
		return nil, err
	}
	pt := p.(parseable)
	return typed.AsTypedUnvalidated(v, pt.schema, pt.typeRef), nil
}

func (c *fastConverter) TypedToObject(v *typed.TypedValue) (runtime.Object, error) {
	return c.inner.TypedToObject(v)
}

func allowsDuplicates(opts []typed.ValidationOptions) bool {
	for _, o := range opts {
		if o == typed.AllowDuplicates {
			return true
		}
	}
	return false
}

// sameVersionConvertor is the scheme's convertor without the deep copy
// the scheme makes when an object already is of the target version: the
// field manager only reads the versioned objects it asks for (a create
// copied the whole object twice for nothing). It hands out the object
// itself when its kind is set already, else a shallow copy with the kind
// set, so the caller's object is never changed.
type sameVersionConvertor struct {
	scheme *runtime.Scheme
}

var _ runtime.ObjectConvertor = sameVersionConvertor{}

func (c sameVersionConvertor) ConvertToVersion(in runtime.Object, target runtime.GroupVersioner) (runtime.Object, error) {
	if _, ok := in.(runtime.Unstructured); ok {
		return c.scheme.ConvertToVersion(in, target)
	}
	kinds, unversioned, err := c.scheme.ObjectKinds(in)
	if err != nil || unversioned {
		return c.scheme.ConvertToVersion(in, target)
	}
	gvk, ok := target.KindForGroupVersionKinds(kinds)
	if !ok || !slices.Contains(kinds, gvk) {
		return c.scheme.ConvertToVersion(in, target)
	}
	if in.GetObjectKind().GroupVersionKind() == gvk {
		return in, nil
	}
	v := reflect.ValueOf(in)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return c.scheme.ConvertToVersion(in, target)
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	out, ok := cp.Interface().(runtime.Object)
	if !ok {
		return c.scheme.ConvertToVersion(in, target)
	}
	out.GetObjectKind().SetGroupVersionKind(gvk)
	return out, nil
}

func (c sameVersionConvertor) Convert(in, out, context interface{}) error {
	return c.scheme.Convert(in, out, context)
}

func (c sameVersionConvertor) UnsafeConvertToVersion(in runtime.Object, target runtime.GroupVersioner) (runtime.Object, error) {
	return c.ConvertToVersion(in, target)
}

func (c sameVersionConvertor) ConvertFieldLabel(gvk k8sschema.GroupVersionKind, label, value string) (string, string, error) {
	return c.scheme.ConvertFieldLabel(gvk, label, value)
}
