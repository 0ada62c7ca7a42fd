package storage

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Interface is the revisioned object store. Keys are slash-separated paths
// such as "/pods/default/nginx"; a prefix ending in "/" addresses a
// collection. Every object written gets metadata.resourceVersion set to the
// store revision of that write (decimal string); callers never choose it.
//
// All methods are safe for concurrent use.
type Interface interface {
	// Create stores obj at key if the key is absent (ErrExists otherwise) and
	// decodes the stored object, with its resourceVersion, into out.
	// obj must have an empty resourceVersion. out may be obj itself: the
	// store then only sets its resourceVersion, sparing the decode of what
	// it just encoded (the caller gives obj up to the response).
	Create(ctx context.Context, key string, obj, out runtime.Object) error

	// Get decodes the object at key into out (ErrNotFound if absent).
	// opts.ResourceVersion "" reads the latest state; "0" allows a cached,
	// possibly older state; any other value must be served at that revision
	// or newer.
	Get(ctx context.Context, key string, opts GetOptions, out runtime.Object) error

	// GetList lists the objects under prefix that match opts.Predicate into
	// listObj (a *XxxList), setting the list's resourceVersion and, when
	// opts.Predicate.Limit cuts it short, its continue token and
	// remainingItemCount. Semantics of ResourceVersion/ResourceVersionMatch
	// follow upstream's list rules.
	GetList(ctx context.Context, prefix string, opts ListOptions, listObj runtime.Object) error

	// GuaranteedUpdate reads the object at key, calls tryUpdate with a copy,
	// and writes the result only if the object did not change in between
	// (compare-and-swap on the revision), retrying tryUpdate on a race. A
	// non-nil preconditions is checked against the current object before
	// tryUpdate (ErrConflict on mismatch). With ignoreNotFound, a missing key
	// calls tryUpdate with a zero object from the codec's New (used for
	// create-on-update); otherwise ErrNotFound. If tryUpdate returns the
	// input unchanged (semantically equal bytes) nothing is written and out
	// gets the current object. The written object is decoded into out.
	GuaranteedUpdate(ctx context.Context, key string, out runtime.Object, ignoreNotFound bool,
		preconditions *Preconditions, tryUpdate UpdateFunc) error

	// Delete removes the object at key if preconditions hold and validate
	// (if non-nil) accepts the current object; the deleted object is decoded
	// into out. Races are retried like GuaranteedUpdate.
	Delete(ctx context.Context, key string, out runtime.Object, preconditions *Preconditions,
		validate ValidateObjectFunc) error

	// Watch streams changes under key (an object key, or a prefix with
	// opts.Recursive) as watch events whose objects carry the revision of
	// the change. See ListOptions for how ResourceVersion picks the start.
	// An event's object may be a runtime.CacheableObject shared by several
	// watchers: encoders serialize it once; GetObject gives a private copy.
	// Event channels are bounded; a consumer too slow to keep up is sent an
	// Error event and the watch ends. Cancelling ctx or calling Stop ends it.
	// A start revision that was compacted gives ErrExpired (before any
	// event) or an Error event carrying a 410 Status.
	Watch(ctx context.Context, key string, opts ListOptions) (watch.Interface, error)

	// CurrentRevision is the newest revision the store has committed.
	CurrentRevision(ctx context.Context) (int64, error)

	// Count returns how many objects are stored under prefix.
	Count(ctx context.Context, prefix string) (int64, error)
}

// UpdateFunc computes the new object from the current one. Returning an
// error aborts the update with that error.
type UpdateFunc func(current runtime.Object) (updated runtime.Object, err error)

// ValidateObjectFunc may reject a delete after seeing the current object.
type ValidateObjectFunc func(ctx context.Context, obj runtime.Object) error

// Preconditions must hold for an update or delete to proceed.
type Preconditions struct {
	UID             *types.UID
	ResourceVersion *string
}

// GetOptions selects what Get may return.
type GetOptions struct {
	ResourceVersion string
	IgnoreNotFound  bool // decode a zero object instead of ErrNotFound
}

// ListOptions drive GetList and Watch.
type ListOptions struct {
	// ResourceVersion and ResourceVersionMatch as in metav1.ListOptions.
	// For Watch: "" means "now, after synthetic ADDED events for the
	// current state"; "0" the same from any recent state; N means the
	// changes after revision N.
	ResourceVersion      string
	ResourceVersionMatch metav1.ResourceVersionMatch
	Predicate            SelectionPredicate
	Recursive            bool
	// ProgressNotify asks Watch for BOOKMARK events (objects carrying only
	// a resourceVersion) at least every minute and at the end of the
	// initial events.
	ProgressNotify bool
	// SendInitialEvents (watch-list): stream the current state as ADDED
	// events, then a BOOKMARK annotated
	// metav1.InitialEventsAnnotationKey="true", then changes.
	SendInitialEvents *bool
}

// SelectionPredicate filters objects by labels and fields and pages lists.
type SelectionPredicate struct {
	Label labels.Selector // nil means everything
	Field fields.Selector // nil means everything
	// GetAttrs extracts the label and field sets the selectors match
	// against. Nil means labels from metadata and fields metadata.name and
	// metadata.namespace only.
	GetAttrs AttrFunc
	Limit    int64
	Continue string
}

// AttrFunc returns the labels and fields of an object for selection.
type AttrFunc func(obj runtime.Object) (labels.Set, fields.Set, error)

// Empty reports whether the predicate matches everything.
func (p SelectionPredicate) Empty() bool {
	return (p.Label == nil || p.Label.Empty()) && (p.Field == nil || p.Field.Empty())
}
