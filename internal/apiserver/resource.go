package apiserver

import (
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/apiserver/fieldmanager"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// resource is one served resource with its store.
type resource struct {
	*registry.Resource
	store    storage.Interface
	gvk      schema.GroupVersionKind
	gr       schema.GroupResource
	prefix   string
	selector map[string]bool // supported field selector keys

	fmMu sync.Mutex
	fms  map[string]*fieldmanager.Manager // by subresource
}

func newResource(r *registry.Resource, store storage.Interface) *resource {
	res := &resource{
		Resource: r,
		store:    store,
		gvk:      r.GroupVersion().WithKind(r.Kind),
		gr:       r.GroupResource(),
		prefix:   StorageKeyPrefix(r),
		selector: map[string]bool{"metadata.name": true},
		fms:      map[string]*fieldmanager.Manager{},
	}
	if r.Namespaced {
		res.selector["metadata.namespace"] = true
	}
	for _, k := range r.FieldSelectorKeys {
		res.selector[k] = true
	}
	return res
}

// StorageKeyPrefix is where a resource's objects live in storage: /pods
// for core, /apps/deployments for other groups (no trailing slash).
func StorageKeyPrefix(r *registry.Resource) string {
	if r.Group == "" {
		return "/" + r.Resource
	}
	return "/" + r.Group + "/" + r.Resource
}

func (r *resource) key(ns, name string) string {
	if r.Namespaced {
		return r.prefix + "/" + ns + "/" + name
	}
	return r.prefix + "/" + name
}

// listKey is the prefix for a list: one namespace or all.
func (r *resource) listKey(ns string) string {
	if r.Namespaced && ns != "" {
		return r.prefix + "/" + ns + "/"
	}
	return r.prefix + "/"
}

// attrs returns labels and fields for selection.
func (r *resource) attrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, err
	}
	l, f := registry.DefaultAttrs(m)
	if !r.Namespaced {
		delete(f, "metadata.namespace")
	}
	if r.FieldSet != nil {
		for k, v := range r.FieldSet(obj) {
			f[k] = v
		}
	}
	return l, f, nil
}

// checkFieldSelector rejects selectors on fields the resource does not
// index, with upstream's message.
func (r *resource) checkFieldSelector(sel fields.Selector) error {
	if sel == nil {
		return nil
	}
	for _, req := range sel.Requirements() {
		if !r.selector[req.Field] {
			return fmt.Errorf("field label not supported: %s", req.Field)
		}
	}
	return nil
}

// fieldManager returns the (lazily built) manager for a subresource.
func (r *resource) fieldManager(sub string) (*fieldmanager.Manager, error) {
	r.fmMu.Lock()
	defer r.fmMu.Unlock()
	if m, ok := r.fms[sub]; ok {
		return m, nil
	}
	m, err := fieldmanager.New(r.gvk, sub)
	if err != nil {
		return nil, err
	}
	r.fms[sub] = m
	return m, nil
}

func (r *resource) hasSubresource(name string) bool {
	_, ok := r.Subresources[name]
	return ok
}

func (r *resource) String() string {
	return strings.TrimPrefix(r.gr.String(), ".")
}

// AttrFunc returns the label and field sets the API server selects objects
// of r by, for storage layers that filter (the watch cache).
func AttrFunc(r *registry.Resource) storage.AttrFunc {
	res := newResource(r, nil)
	return res.attrs
}
