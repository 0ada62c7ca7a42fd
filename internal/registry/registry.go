package registry

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is everything the API server needs to serve one resource.
type Resource struct {
	// GroupVersionResource, e.g. {"apps","v1","deployments"}; Group "" is core.
	schema.GroupVersionResource
	Kind         string   // "Deployment"
	SingularName string   // "deployment"
	ShortNames   []string // "deploy"
	Categories   []string // "all"
	Namespaced   bool

	// New and NewList return empty typed objects (&appsv1.Deployment{}).
	New     func() runtime.Object
	NewList func() runtime.Object

	Strategy Strategy

	// ValidateName checks metadata.name (prefix: it is a generateName
	// prefix) and returns messages as apimachinery's name validators do.
	// Nil means DNS-1123 subdomain, the most common rule; Services and
	// Namespaces use DNS labels.
	ValidateName func(name string, prefix bool) []string

	// FieldSet returns the fields this resource may be selected by, beyond
	// metadata.name and metadata.namespace (which every resource supports
	// and the API server adds). Nil means only those two. A selector on a
	// field not in the returned set is rejected with 400, as upstream does.
	FieldSet func(obj runtime.Object) fields.Set
	// FieldSelectorKeys lists the keys FieldSet fills, for validating a
	// selector before any object is read.
	FieldSelectorKeys []string

	// Table prints objects as rows for `kubectl get`. Nil means the
	// default NAME and AGE (Created At) columns.
	Table TableConvertor

	// Subresources served under .../{name}/{sub}: "status", "scale",
	// "binding", "eviction". The API server routes each by name.
	Subresources map[string]*Subresource

	// GracefulDelete, when set, decides what a DELETE does to a live
	// object (pods: set deletionTimestamp and grace period, keep the
	// object until the node finishes it). It returns true when the object
	// must be kept (updated, not removed) and mutates obj in place.
	GracefulDelete func(ctx context.Context, obj runtime.Object, opts *metav1.DeleteOptions) (keep bool)

	// Allocator, when set, reserves cluster-wide unique values an object
	// needs (Service clusterIPs and nodePorts) around storage writes.
	Allocator Allocator

	// Review, when set, makes the resource a create-only review that is
	// never stored (SelfSubjectAccessReview, SelfSubjectReview): the
	// decoded body of a POST goes to Review, whose answer (or API error)
	// is the response.
	Review func(ctx context.Context, obj runtime.Object) (runtime.Object, error)
}

// Allocator reserves unique values for objects of one resource. The API
// server calls Restore once at start with every stored object, Allocate
// before a create (old == nil) or update is written, the returned release
// if that write fails, and Release after an object is deleted. Allocate
// fills the values into obj (e.g. spec.clusterIP) and returns a 422-style
// field error list when a requested value is taken or out of range.
type Allocator interface {
	Restore(objs []runtime.Object)
	Allocate(ctx context.Context, obj, old runtime.Object) (release func(), errs field.ErrorList)
	Release(obj runtime.Object)
}

// Subresource describes one subresource of a Resource.
type Subresource struct {
	// Kind of the object the subresource reads and writes; "" means the
	// parent's kind (status). "Scale" (autoscaling/v1), "Binding", "Eviction".
	Kind string
	// Strategy for subresources that write the parent object through a
	// different preparation (status: keep spec, take status).
	Strategy Strategy

	// ValidateName checks metadata.name (prefix: it is a generateName
	// prefix) and returns messages as apimachinery's name validators do.
	// Nil means DNS-1123 subdomain, the most common rule; Services and
	// Namespaces use DNS labels.
	ValidateName func(name string, prefix bool) []string
	// Verbs the subresource supports, e.g. get, update, patch, create.
	Verbs []string
}

// Strategy is the resource-specific part of create and update. Every
// method must be safe to call concurrently and must not do I/O.
type Strategy interface {
	// Default fills unset fields with upstream's defaults. Called on every
	// object decoded from a request body (create, update, patch result).
	Default(obj runtime.Object)
	// PrepareForCreate clears fields a client may not set on create
	// (status for resources with a status subresource) and sets generation.
	PrepareForCreate(ctx context.Context, obj runtime.Object)
	// PrepareForUpdate carries over what this endpoint may not change (for
	// the main resource: status; for the status subresource: everything but
	// status) and bumps generation when the spec changed.
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object)
	// Validate checks a new object, returning upstream's field errors
	// (422 Invalid with causes). ObjectMeta is validated by the API server
	// already; strategies validate the rest.
	Validate(ctx context.Context, obj runtime.Object) field.ErrorList
	// ValidateUpdate checks an update, including immutable fields.
	ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList
	// AllowCreateOnUpdate: PUT of an absent object creates it (upstream:
	// true for a few kinds such as leases, events, endpoints).
	AllowCreateOnUpdate() bool
}

// TableConvertor turns one object or a list into a metav1.Table. Rows carry
// the cells only; the API server fills each row's object according to the
// request's includeObject.
type TableConvertor interface {
	ColumnDefinitions() []metav1.TableColumnDefinition
	// Cells returns one row's cells for obj, matching ColumnDefinitions.
	Cells(obj runtime.Object) ([]interface{}, error)
}

// DefaultAttrs is the label and field set of any object: its labels,
// metadata.name and metadata.namespace. Resources add their own fields with
// Resource.FieldSet.
func DefaultAttrs(meta metav1.Object) (labels.Set, fields.Set) {
	return labels.Set(meta.GetLabels()), fields.Set{
		"metadata.name":      meta.GetName(),
		"metadata.namespace": meta.GetNamespace(),
	}
}
