package fieldmanager

import (
	"reflect"
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
