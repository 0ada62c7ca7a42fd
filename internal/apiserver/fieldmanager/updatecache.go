package fieldmanager

import (
	"crypto/sha256"
	"reflect"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// updateCache remembers the managedFields of updates by the shape of the
// live and the new object, as createCache does for creates. An update's
// managedFields are a function of both objects' JSON forms without the
// strip set, of the live managedFields, and of the times of those entries
// only through which entry comes first and which entry gets this write's
// time. The key therefore holds both JSON forms with the strip set and
// the entries' times cleared; the value says, for each resulting entry,
// whether its time is this write's or that of a live entry, and the
// entries are sorted again by upstream's order once their times are set.
// The common case is the scheduler's or a kubelet's status write to many
// look-alike pods (the same condition on every unschedulable pod).
//
// Writes the cache cannot reproduce exactly compute their managedFields
// as upstream: a request that sets managedFields other than the live
// ones (or resets them), and objects with so many entries that upstream
// may merge the oldest (its cap orders by time).
type updateCache struct {
	shapeMap[updateFields]
}

// updates is the cache of every Manager.
var updates = &updateCache{}

// updateFields is an update's managedFields without times and where
// each entry's time comes from.
type updateFields struct {
	fields []metav1.ManagedFieldsEntry
	src    []timeSrc
}

type timeSrc uint8

const (
	srcNone    timeSrc = iota // no time
	srcNow                    // this write's time
	srcLive                   // the time of the live entry of the same identity
	srcUnknown                // not cached
)

// maxCachedEntries stays below upstream's cap of update entries (10), so
// the cap never merges entries of a cached write.
const maxCachedEntries = 8

// key returns the cache key of an update of live to obj by manager, or
// false when the cache does not serve the write.
func (c *updateCache) key(gvk schema.GroupVersionKind, subresource string, live, obj runtime.Object, manager string) (cacheKey, bool) {
	var none cacheKey
	lm, err := meta.Accessor(live)
	if err != nil {
		return none, false
	}
	om, err := meta.Accessor(obj)
	if err != nil {
		return none, false
	}
	lf := lm.GetManagedFields()
	if len(lf) == 0 || len(lf) > maxCachedEntries {
		return none, false
	}
	// The main resource takes the request's managedFields when it sends
	// any (a subresource never does): serve only requests that send none
	// or the live ones.
	if subresource == "" {
		if of := om.GetManagedFields(); of != nil && !equality.Semantic.DeepEqual(of, lf) {
			return none, false
		}
	}
	// Upstream decodes the entries into a map: their order does not
	// matter, only their times.
	untimed := make([]metav1.ManagedFieldsEntry, len(lf))
	for i := range lf {
		untimed[i] = lf[i]
		untimed[i].Time = nil
	}
	sortEntries(untimed)
	liveShape, ok := shapeOf(live, untimed, nil)
	if !ok {
		return none, false
	}
	objShape, ok := shapeOf(obj, nil, nil)
	if !ok {
		return none, false
	}
	// The live object's token volume name (also in its fieldsV1, escaped)
	// must be the new object's.
	var key cacheKey
	if name := generatedName(objShape); name != "" && generatedName(liveShape) == name {
		key.rename = name
		liveShape, objShape = withPlaceholder(liveShape, name), withPlaceholder(objShape, name)
	}
	h := sha256.New()
	for _, s := range []string{"update", gvk.String(), subresource, manager} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(liveShape)
	h.Write([]byte{0})
	h.Write(objShape)
	h.Sum(key.sum[:0])
	return key, true
}

// shapeOf returns the key material (encodeShape) of a shallow copy of obj with the strip
// set cleared, managedFields set to fields and, when normalize is not
// nil, normalize applied to the copy; obj is not changed. It is the key
// material of both caches.
func shapeOf(obj runtime.Object, fields []metav1.ManagedFieldsEntry, normalize func(runtime.Object)) ([]byte, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	shape, ok := cp.Interface().(runtime.Object)
	if !ok {
		return nil, false
	}
	m, err := meta.Accessor(shape)
	if err != nil {
		return nil, false
	}
	shape.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	m.SetName("")
	m.SetNamespace("")
	m.SetUID("")
	m.SetCreationTimestamp(metav1.Time{})
	m.SetResourceVersion("")
	m.SetGeneration(0)
	m.SetSelfLink("")
	m.SetManagedFields(fields)
	if normalize != nil {
		normalize(shape)
	}
	data, err := encodeShape(shape)
	if err != nil {
		return nil, false
	}
	return data, true
}

// apply sets obj's managedFields from the cache: times of this write are
// now, the others those of the live entries.
func (c *updateCache) apply(key cacheKey, live, obj runtime.Object, now time.Time) bool {
	e, ok := c.get(key.sum)
	if !ok {
		return false
	}
	lm, err := meta.Accessor(live)
	if err != nil {
		return false
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	lf := lm.GetManagedFields()
	var fields []metav1.ManagedFieldsEntry
	if e.fields != nil {
		fields = make([]metav1.ManagedFieldsEntry, len(e.fields))
		for i := range e.fields {
			e.fields[i].DeepCopyInto(&fields[i])
			if key.rename != "" {
				renameFields(fields[i:i+1], tokenVolumePlaceholder, []byte(key.rename))
			}
			switch e.src[i] {
			case srcNow:
				fields[i].Time = &metav1.Time{Time: now}
			case srcLive:
				l := liveEntry(fields[i], lf)
				if l == nil || l.Time == nil {
					return false
				}
				t := *l.Time
				fields[i].Time = &t
			}
		}
		sortEntries(fields)
	}
	m.SetManagedFields(fields)
	return true
}

// record remembers the managedFields the field manager gave obj when
// every entry's time is explained: this write's (at or after start) or
// that of the live entry of the same manager, operation, version and
// subresource.
func (c *updateCache) record(key cacheKey, live, obj runtime.Object, start time.Time) {
	lm, err := meta.Accessor(live)
	if err != nil {
		return
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	lf := lm.GetManagedFields()
	var e updateFields
	size := 2 * sha256.Size
	if mf := m.GetManagedFields(); mf != nil {
		e.fields = make([]metav1.ManagedFieldsEntry, len(mf))
		e.src = make([]timeSrc, len(mf))
		for i := range mf {
			mf[i].DeepCopyInto(&e.fields[i])
			e.fields[i].Time = nil
			e.src[i] = timeSource(mf[i], lf, start)
			if e.src[i] == srcUnknown {
				return
			}
			if key.rename != "" {
				renameFields(e.fields[i:i+1], []byte(key.rename), tokenVolumePlaceholder)
			}
			if f := e.fields[i].FieldsV1; f != nil {
				size += len(f.Raw)
			}
		}
	}
	c.put(key.sum, e, size)
}

// timeSource explains the time of entry e.
func timeSource(e metav1.ManagedFieldsEntry, live []metav1.ManagedFieldsEntry, start time.Time) timeSrc {
	if e.Time == nil {
		return srcNone
	}
	if l := liveEntry(e, live); l != nil && l.Time != nil && l.Time.Equal(e.Time) {
		// A live time this write did not change; a write within the same
		// instant as the live entry is ambiguous.
		if !e.Time.Time.Before(start) {
			return srcUnknown
		}
		return srcLive
	}
	if e.Time.Time.Before(start) {
		return srcUnknown
	}
	return srcNow
}

// liveEntry returns the live entry of e's manager, operation, version
// and subresource.
func liveEntry(e metav1.ManagedFieldsEntry, live []metav1.ManagedFieldsEntry) *metav1.ManagedFieldsEntry {
	for j := range live {
		l := &live[j]
		if l.Manager == e.Manager && l.Operation == e.Operation && l.APIVersion == e.APIVersion && l.Subresource == e.Subresource {
			return l
		}
	}
	return nil
}

// sortEntries orders entries as upstream encodes them: by operation,
// time in seconds, manager, version and subresource.
func sortEntries(fields []metav1.ManagedFieldsEntry) {
	sort.Slice(fields, func(i, j int) bool {
		p, q := fields[i], fields[j]
		if p.Operation != q.Operation {
			return p.Operation < q.Operation
		}
		var ps, qs int64
		if p.Time != nil {
			ps = p.Time.Unix()
		}
		if q.Time != nil {
			qs = q.Time.Unix()
		}
		if ps != qs {
			return ps < qs
		}
		if p.Manager != q.Manager {
			return p.Manager < q.Manager
		}
		if p.APIVersion != q.APIVersion {
			return p.APIVersion < q.APIVersion
		}
		return p.Subresource < q.Subresource
	})
}
