package fieldmanager

import (
	"crypto/sha256"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// createCache remembers the managedFields of plain creates by the shape of
// the object. A create's managedFields are a function of the object's JSON
// form alone (they come from comparing it with the empty object) once the
// fields the manager never owns (name, namespace, uid, creationTimestamp,
// resourceVersion, generation, selfLink: the strip set) are cleared, and
// controllers create many objects that differ only there (a ReplicaSet's
// pods). A hit costs one JSON encoding instead of the typed conversion and
// comparison, and gives the same entries, with the time of this write.
//
// One cache serves every kind; the key is a SHA-256 of the kind, the
// subresource, the manager and the JSON form, and the cache starts over
// when its entries exceed maxCreateCacheBytes.
type createCache struct {
	shapeMap[cachedFields]
}

// creates is the cache of every Manager.
var creates = &createCache{}

// cachedFields is a create's managedFields without times; timed[i]
// reports that entry i had one.
type cachedFields struct {
	fields []metav1.ManagedFieldsEntry
	timed  []bool
}

// maxCreateCacheBytes bounds the cache's entries (their fieldsV1).
const maxCreateCacheBytes = 2 << 20

// key returns the cache key of a create of obj by manager, or false when
// the write is not a plain create (the live object is not empty, or the
// request sets managedFields itself). A nil live stands for the empty
// object.
func (c *createCache) key(gvk schema.GroupVersionKind, subresource string, live, obj runtime.Object, manager string) (cacheKey, bool) {
	var none cacheKey
	if live != nil && !isEmpty(live) {
		return none, false
	}
	om, err := meta.Accessor(obj)
	if err != nil || len(om.GetManagedFields()) > 0 {
		return none, false
	}
	var normalize func(runtime.Object)
	if _, ok := obj.(*corev1.Event); ok {
		normalize = func(o runtime.Object) { normalizeEvent(o.(*corev1.Event)) }
	}
	data, ok := shapeOf(obj, nil, normalize)
	if !ok {
		return none, false
	}
	var key cacheKey
	key.rename = generatedName(data)
	data = withPlaceholder(data, key.rename)
	h := sha256.New()
	for _, s := range []string{gvk.String(), subresource, manager} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(data)
	h.Sum(key.sum[:0])
	return key, true
}

// apply sets obj's managedFields from the cache, stamped with now.
func (c *createCache) apply(key cacheKey, obj runtime.Object, now time.Time) bool {
	e, ok := c.get(key.sum)
	if !ok {
		return false
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	var fields []metav1.ManagedFieldsEntry
	if e.fields != nil {
		fields = make([]metav1.ManagedFieldsEntry, len(e.fields))
		for i := range e.fields {
			e.fields[i].DeepCopyInto(&fields[i])
			if e.timed[i] {
				fields[i].Time = &metav1.Time{Time: now}
			}
		}
		if key.rename != "" {
			renameFields(fields, tokenVolumePlaceholder, []byte(key.rename))
		}
	}
	m.SetManagedFields(fields)
	return true
}

// record remembers the managedFields the field manager gave obj.
func (c *createCache) record(key cacheKey, obj runtime.Object) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	var e cachedFields
	size := sha256.Size
	if mf := m.GetManagedFields(); mf != nil {
		e.fields = make([]metav1.ManagedFieldsEntry, len(mf))
		e.timed = make([]bool, len(mf))
		for i := range mf {
			mf[i].DeepCopyInto(&e.fields[i])
			e.timed[i] = mf[i].Time != nil
			e.fields[i].Time = nil
		}
		if key.rename != "" {
			renameFields(e.fields, []byte(key.rename), tokenVolumePlaceholder)
		}
		for i := range e.fields {
			if f := e.fields[i].FieldsV1; f != nil {
				size += len(f.Raw)
			}
		}
	}
	c.put(key.sum, e, size)
}

// isEmpty reports an object with nothing set but, perhaps, its kind: the
// live object of a create.
func isEmpty(obj runtime.Object) bool {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	v = v.Elem()
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).Name != "TypeMeta" && !v.Field(i).IsZero() {
			return false
		}
	}
	return true
}

// normalizeEvent replaces the values of e's scalar fields (a shallow
// copy's) by placeholders of the same presence. An Event has no keyed
// lists outside its metadata, so its managedFields depend on which of
// these fields are set, never on their values; every event of a kind
// (FailedScheduling, Pulled...) then shares one entry although it names
// another object, node or time.
func normalizeEvent(e *corev1.Event) {
	str := func(s *string) {
		if *s != "" {
			*s = "-"
		}
	}
	ref := &e.InvolvedObject
	for _, f := range []*string{&ref.Kind, &ref.Namespace, &ref.Name, (*string)(&ref.UID), &ref.APIVersion,
		&ref.ResourceVersion, &ref.FieldPath, &e.Reason, &e.Message, &e.Source.Component, &e.Source.Host,
		&e.Type, &e.Action, &e.ReportingController, &e.ReportingInstance} {
		str(f)
	}
	placeholder := time.Unix(1, 0)
	if !e.FirstTimestamp.IsZero() {
		e.FirstTimestamp = metav1.NewTime(placeholder)
	}
	if !e.LastTimestamp.IsZero() {
		e.LastTimestamp = metav1.NewTime(placeholder)
	}
	if !e.EventTime.IsZero() {
		e.EventTime = metav1.NewMicroTime(placeholder)
	}
	if e.Count != 0 {
		e.Count = 1
	}
}
