package fieldmanager

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The caches' key material is an encoding of the object's shape that tells
// apart every pair of objects whose managedFields may differ. JSON does
// (managedFields are computed from the JSON form), but encoding/json costs
// a fifth of a pod create. The protobuf encoding is several times cheaper
// and tells apart as much, except a nil from an empty list or map: both
// encode to nothing, while JSON writes null or [] for a field without
// omitempty, and managedFields own an empty list but not a null one
// (EndpointSlice.endpoints). So a protobuf key is followed by a signature
// of every such field, nil, empty or neither, in a fixed walk order.
//
// Only the kinds written at rates where it matters (pods: creates and the
// scheduler's and kubelets' status writes; events) take it; any other kind
// keeps the JSON form.

// protoShapeMark starts a protobuf shape; a JSON one starts with '{'.
var protoShapeMark = []byte("\x00pb\x00")

var protoShapeTypes = map[reflect.Type]bool{
	reflect.TypeFor[corev1.Pod]():   true,
	reflect.TypeFor[corev1.Event](): true,
}

type protoMarshaler interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// encodeShape returns the key material of shape.
func encodeShape(shape runtime.Object) ([]byte, error) {
	v := reflect.ValueOf(shape).Elem()
	pm, ok := shape.(protoMarshaler)
	if !ok || !protoShapeTypes[v.Type()] {
		return json.Marshal(shape)
	}
	n := pm.Size()
	data := make([]byte, len(protoShapeMark)+n, len(protoShapeMark)+n+32)
	copy(data, protoShapeMark)
	if _, err := pm.MarshalToSizedBuffer(data[len(protoShapeMark):]); err != nil {
		return nil, err
	}
	data = append(data, 0xff)
	data, ok = appendNilness(data, v)
	if !ok {
		return json.Marshal(shape)
	}
	return data, nil
}

// nilPlan lists, for a struct type, the fields to look at: those that are
// lists or maps without omitempty (recorded) and those that lead to one.
type nilPlan struct {
	fields []nilField
}

type nilField struct {
	index  int
	record bool // a list or map without omitempty
	walk   bool // its value (or elements) lead to recorded fields
}

var (
	nilPlans   sync.Map // reflect.Type -> *nilPlan
	marshalerT = reflect.TypeFor[json.Marshaler]()
)

// planFor returns t's plan; visiting guards against recursive types
// (treated as leading nowhere, which no allowed kind has).
func planFor(t reflect.Type, visiting map[reflect.Type]bool) *nilPlan {
	if p, ok := nilPlans.Load(t); ok {
		return p.(*nilPlan)
	}
	if visiting[t] {
		return &nilPlan{}
	}
	visiting[t] = true
	defer delete(visiting, t)
	p := &nilPlan{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		ft := f.Type
		record := false
		if k := ft.Kind(); (k == reflect.Slice && ft.Elem().Kind() != reflect.Uint8 || k == reflect.Map) &&
			!slices.Contains(strings.Split(tag, ",")[1:], "omitempty") {
			record = true
		}
		walk := leads(ft, visiting)
		if record || walk {
			p.fields = append(p.fields, nilField{index: i, record: record, walk: walk})
		}
	}
	if len(visiting) == 1 {
		nilPlans.Store(t, p)
	}
	return p
}

// leads reports whether values of t may hold recorded fields.
func leads(t reflect.Type, visiting map[reflect.Type]bool) bool {
	if t.Implements(marshalerT) || reflect.PointerTo(t).Implements(marshalerT) {
		return false // encoded its own way (times, quantities, raw JSON)
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return leads(t.Elem(), visiting)
	case reflect.Struct:
		return len(planFor(t, visiting).fields) > 0
	}
	return false
}

// appendNilness appends the signature of v's recorded fields: 'n' nil,
// 'e' empty, 'x' with elements. ok is false for a map it cannot order.
func appendNilness(data []byte, v reflect.Value) ([]byte, bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return data, true
		}
		return appendNilness(data, v.Elem())
	case reflect.Slice:
		for i := range v.Len() {
			var ok bool
			if data, ok = appendNilness(data, v.Index(i)); !ok {
				return data, false
			}
		}
		return data, true
	case reflect.Map:
		keys := v.MapKeys()
		for _, k := range keys {
			if k.Kind() != reflect.String {
				return data, false
			}
		}
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			var ok bool
			if data, ok = appendNilness(data, v.MapIndex(k)); !ok {
				return data, false
			}
		}
		return data, true
	case reflect.Struct:
	default:
		return data, true
	}
	for _, f := range planFor(v.Type(), map[reflect.Type]bool{}).fields {
		fv := v.Field(f.index)
		if f.record {
			switch {
			case fv.IsNil():
				data = append(data, 'n')
			case fv.Len() == 0:
				data = append(data, 'e')
			default:
				data = append(data, 'x')
			}
		}
		if f.walk {
			var ok bool
			if data, ok = appendNilness(data, fv); !ok {
				return data, false
			}
		}
	}
	return data, true
}
