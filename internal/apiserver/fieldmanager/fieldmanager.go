package fieldmanager

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// typeConverter is built once, on first use: parsing the schemas of every
// built-in kind takes a noticeable moment and memory.
var typeConverter = sync.OnceValue(func() managedfields.TypeConverter {
	return &fastConverter{inner: applyconfigurations.NewTypeConverter(scheme.Scheme)}
})

// Warm builds the type converter in the background, so that a server's
// first write (the bootstrap objects, right after it starts serving) does
// not wait for the schemas to be parsed: started before etcd, the parse
// overlaps etcd's start and its member's election.
func Warm() { go typeConverter() }

// Manager tracks managed fields for one kind and subresource.
type Manager struct {
	gvk     schema.GroupVersionKind
	sub     string
	fm      *managedfields.FieldManager
	creates *createCache // nil: every create computes its managedFields
	updates *updateCache // nil: every update computes its managedFields
}

// New returns the manager for gvk at subresource ("" for the main
// resource, "status", "scale").
func New(gvk schema.GroupVersionKind, subresource string) (*Manager, error) {
	return newWith(typeConverter(), sameVersionConvertor{scheme.Scheme}, gvk, subresource)
}

func newWith(tc managedfields.TypeConverter, conv runtime.ObjectConvertor, gvk schema.GroupVersionKind, subresource string) (*Manager, error) {
	fm, err := managedfields.NewDefaultFieldManager(tc, conv, scheme.Scheme, scheme.Scheme,
		gvk, gvk.GroupVersion(), subresource, resetFields(gvk, subresource))
	if err != nil {
		return nil, fmt.Errorf("field manager for %s: %w", gvk, err)
	}
	return &Manager{gvk: gvk, sub: subresource, fm: fm, creates: creates, updates: updates}, nil
}

// resetFields are the fields an endpoint may not set, so it never owns
// them: status through the main resource, everything else through status.
func resetFields(gvk schema.GroupVersionKind, subresource string) map[fieldpath.APIVersion]fieldpath.Filter {
	obj, err := scheme.Scheme.New(gvk)
	if err != nil {
		return nil
	}
	v := reflect.ValueOf(obj).Elem()
	if !v.FieldByName("Status").IsValid() {
		return nil
	}
	var set *fieldpath.Set
	switch subresource {
	case "":
		set = fieldpath.NewSet(fieldpath.MakePathOrDie("status"))
	case "status":
		paths := []fieldpath.Path{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.Name == "TypeMeta" || f.Name == "ObjectMeta" || f.Name == "Status" {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" {
				paths = append(paths, fieldpath.MakePathOrDie(name))
			}
		}
		set = fieldpath.NewSet(paths...)
	default:
		return nil
	}
	return map[fieldpath.APIVersion]fieldpath.Filter{
		fieldpath.APIVersion(gvk.GroupVersion().String()): fieldpath.NewExcludeSetFilter(set),
	}
}

// Update records a non-apply write of obj by manager, given the live object.
func (m *Manager) Update(live, obj runtime.Object, manager string) (runtime.Object, error) {
	var key cacheKey
	cacheable := false
	if m.creates != nil {
		key, cacheable = m.creates.key(m.gvk, m.sub, live, obj, manager)
		if cacheable && m.creates.apply(key, obj, time.Now().UTC()) {
			return obj, nil
		}
	}
	var ukey cacheKey
	ucacheable := false
	start := time.Now().UTC()
	if !cacheable && m.updates != nil {
		ukey, ucacheable = m.updates.key(m.gvk, m.sub, live, obj, manager)
		if ucacheable && m.updates.apply(ukey, live, obj, start) {
			return obj, nil
		}
	}
	// As upstream: managed fields that cannot be tracked never fail a
	// write (the manager resets them instead).
	out := m.fm.UpdateNoErrors(live, obj, manager)
	if cacheable {
		m.creates.record(key, out)
	}
	if ucacheable {
		m.updates.record(ukey, live, out, start)
	}
	return out, nil
}

// Create records a plain create of obj by manager; newLive returns the
// empty object to compare it with, called only when the create cache has
// no entry for obj.
func (m *Manager) Create(newLive func() runtime.Object, obj runtime.Object, manager string) (runtime.Object, error) {
	if m.creates != nil {
		if key, ok := m.creates.key(m.gvk, m.sub, nil, obj, manager); ok && m.creates.apply(key, obj, time.Now().UTC()) {
			return obj, nil
		}
	}
	return m.Update(newLive(), obj, manager)
}

// Apply merges the applied configuration patch (YAML or JSON) into live
// for manager; conflicts with other managers are a 409 unless force.
func (m *Manager) Apply(live runtime.Object, patch []byte, manager string, force bool) (runtime.Object, error) {
	applied := &unstructured.Unstructured{Object: map[string]interface{}{}}
	if err := yaml.Unmarshal(patch, &applied.Object); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	if applied.Object == nil {
		return nil, apierrors.NewBadRequest("error decoding YAML: the apply configuration is empty")
	}
	gvk := applied.GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, apierrors.NewBadRequest("apiVersion and kind must be set in the apply configuration")
	}
	if gvk != m.gvk {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the apply configuration has kind %q in %q, expected %q in %q",
			gvk.Kind, gvk.GroupVersion(), m.gvk.Kind, m.gvk.GroupVersion()))
	}
	out, err := m.fm.Apply(live, applied, manager, force)
	if err != nil {
		return nil, asAPIError(err)
	}
	return out, nil
}

// asAPIError keeps API errors (conflicts are 409s already) and turns the
// rest, which come from invalid apply configurations, into 422s.
func asAPIError(err error) error {
	if _, ok := err.(apierrors.APIStatus); ok {
		return err
	}
	return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "apply", schema.GroupResource{}, "", err.Error(), 0, false)
}

// DefaultManager derives a manager name from a User-Agent as upstream
// does: the program name before the first '/'.
func DefaultManager(userAgent string) string {
	name, _, _ := strings.Cut(userAgent, "/")
	if len(name) > 128 {
		name = name[:128]
	}
	return name
}
