package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/apiserver/fieldmanager"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// create serves POST to a collection.
func (s *Server) create(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	if res.Namespaced && info.Namespace == "" {
		s.methodNotAllowed(w, r)
		return
	}
	obj, params, err := s.decodeWrite(w, r, res.gvk, res.New())
	if err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	manager := managerName(r, params)
	out, err := s.createObject(r.Context(), res, info.Namespace, obj, params.DryRun, func(o runtime.Object) (runtime.Object, error) {
		return s.trackCreate(res, o, manager)
	})
	if err != nil {
		name := ""
		if m, merr := meta.Accessor(obj); merr == nil {
			name = m.GetName()
		}
		s.writeError(w, r, err, res.gr, name)
		return
	}
	s.respond(w, r, res, http.StatusCreated, out)
}

func managerName(r *http.Request, p writeParams) string {
	if p.FieldManager != "" {
		return p.FieldManager
	}
	return fieldmanager.DefaultManager(r.UserAgent())
}

// trackUpdate records a non-apply write in managedFields.
func (s *Server) trackUpdate(res *resource, sub string, live, obj runtime.Object, manager string) (runtime.Object, error) {
	fm, err := res.fieldManager(sub)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("field manager for %s: %w", res.gr, err))
	}
	return fm.Update(live, obj, manager)
}

// trackCreate records a create in managedFields; the empty live object
// is allocated only when the create cache misses.
func (s *Server) trackCreate(res *resource, obj runtime.Object, manager string) (runtime.Object, error) {
	fm, err := res.fieldManager("")
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("field manager for %s: %w", res.gr, err))
	}
	return fm.Create(res.New, obj, manager)
}

// prepareCreate fills server-set metadata, defaults, prepares and
// validates a new object. It returns the allocation release func.
func (s *Server) prepareCreate(ctx context.Context, res *resource, ns string, obj runtime.Object) (func(), error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if res.Namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(ns)
		} else if m.GetNamespace() != ns {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	} else {
		m.SetNamespace("")
	}
	if m.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
	}
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(generateName(m.GetGenerateName()))
	}
	m.SetUID(uuid.NewUUID())
	m.SetCreationTimestamp(metav1.NewTime(s.now().Truncate(1e9)))
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetSelfLink("")
	res.Strategy.Default(obj)
	res.Strategy.PrepareForCreate(ctx, obj)
	if err := s.admitCreate(ctx, res, obj); err != nil {
		return nil, err
	}
	errs := apivalidation.ValidateObjectMetaAccessor(m, res.Namespaced, res.nameValidator(), field.NewPath("metadata"))
	errs = append(errs, res.Strategy.Validate(ctx, obj)...)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(res.gvk.GroupKind(), m.GetName(), errs)
	}
	if err := s.checkNamespace(ctx, res, m.GetNamespace()); err != nil {
		return nil, err
	}
	release := func() {}
	if res.Allocator != nil {
		rel, errs := res.Allocator.Allocate(ctx, obj, nil)
		if len(errs) > 0 {
			return nil, apierrors.NewInvalid(res.gvk.GroupKind(), m.GetName(), errs)
		}
		if rel != nil {
			release = rel
		}
	}
	return release, nil
}

// createObject runs the create path and writes unless dryRun. track runs
// last (managedFields).
func (s *Server) createObject(ctx context.Context, res *resource, ns string, obj runtime.Object, dryRun bool,
	track func(runtime.Object) (runtime.Object, error)) (runtime.Object, error) {
	release, err := s.prepareCreate(ctx, res, ns, obj)
	if err != nil {
		return nil, err
	}
	if track != nil {
		if obj, err = track(obj); err != nil {
			release()
			return nil, err
		}
	}
	if err := s.admitQuota(ctx, res, obj, dryRun); err != nil {
		release()
		return nil, err
	}
	m, _ := meta.Accessor(obj)
	if dryRun {
		release()
		return obj, nil
	}
	// The store sets obj's resourceVersion instead of decoding the bytes
	// it wrote into a new object: obj is not used but for the response.
	out := obj
	if err := res.store.Create(ctx, res.key(m.GetNamespace(), m.GetName()), obj, out); err != nil {
		release()
		if storage.IsExists(err) && m.GetGenerateName() != "" {
			return nil, apierrors.NewAlreadyExists(res.gr, m.GetName())
		}
		return nil, err
	}
	s.emptyLookups.Delete(res.gr.String() + "/" + m.GetNamespace())
	return out, nil
}

func generateName(prefix string) string {
	const maxNameLength, randomLength = 63, 5
	if len(prefix) > maxNameLength-randomLength {
		prefix = prefix[:maxNameLength-randomLength]
	}
	return prefix + utilrand.String(randomLength)
}

func (r *resource) nameValidator() apivalidation.ValidateNameFunc {
	if r.ValidateName != nil {
		return r.ValidateName
	}
	return apivalidation.NameIsDNSSubdomain
}

// checkNamespace is the NamespaceLifecycle admission: objects may only be
// created in namespaces that exist and are not terminating.
func (s *Server) checkNamespace(ctx context.Context, res *resource, ns string) error {
	if !res.Namespaced || ns == "" {
		return nil
	}
	nsRes := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}]
	if nsRes == nil {
		return nil
	}
	terminating, err := namespaceTerminating(ctx, nsRes, ns)
	if storage.IsNotFound(err) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns)
	}
	if err != nil {
		return err
	}
	if terminating {
		if res.gr == (schema.GroupResource{Resource: "events"}) || res.gr == (schema.GroupResource{Group: "events.k8s.io", Resource: "events"}) {
			return nil
		}
		err := apierrors.NewForbidden(res.gr, "", fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: corev1.NamespaceTerminatingCause, Message: fmt.Sprintf("namespace %s is being terminated", ns), Field: "metadata.namespace",
		})
		return err
	}
	return nil
}

// peeker is a store that lends its cached objects for reading (the
// watch cache).
type peeker interface {
	Peek(key string, f func(runtime.Object)) bool
}

// namespaceTerminating reports whether namespace ns is being deleted,
// reading the watch cache's object in place when it has one (no copy per
// create), else the store as getCachedOrLive does.
func namespaceTerminating(ctx context.Context, nsRes *resource, ns string) (bool, error) {
	key := nsRes.key("", ns)
	terminating := func(o *corev1.Namespace) bool {
		return o.DeletionTimestamp != nil || o.Status.Phase == corev1.NamespaceTerminating
	}
	if p, ok := nsRes.store.(peeker); ok {
		var t, typed bool
		if p.Peek(key, func(obj runtime.Object) {
			if o, ok := obj.(*corev1.Namespace); ok {
				t, typed = terminating(o), true
			}
		}) && typed {
			return t, nil
		}
	}
	nsObj := &corev1.Namespace{}
	if err := getCachedOrLive(ctx, nsRes, key, nsObj); err != nil {
		return false, err
	}
	return terminating(nsObj), nil
}

// update serves PUT of one object.
func (s *Server) update(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	obj, params, err := s.decodeWrite(w, r, res.gvk, res.New())
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	if err := checkNameAndNamespace(obj, res, info); err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	manager := managerName(r, params)
	out, created, err := s.updateObject(r.Context(), res, info, res.Strategy, params.DryRun, res.Strategy.AllowCreateOnUpdate(),
		func(current runtime.Object, exists bool) (runtime.Object, error) {
			next := obj.DeepCopyObject()
			return s.trackUpdate(res, "", current, next, manager)
		})
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.respond(w, r, res, code, out)
}

func checkNameAndNamespace(obj runtime.Object, res *resource, info requestInfo) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	if m.GetName() != info.Name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), info.Name))
	}
	if res.Namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(info.Namespace)
		} else if m.GetNamespace() != info.Namespace {
			return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	}
	return nil
}

// computeFunc returns the desired object given the current one (exists
// false: the object is absent and current is an empty object).
type computeFunc func(current runtime.Object, exists bool) (runtime.Object, error)

// updateObject is the shared update path of PUT, PATCH, apply and status
// writes: compute the desired object, carry over what clients may not set,
// prepare and validate with the strategy, and compare-and-swap it into
// storage. created reports a create-on-update.
func (s *Server) updateObject(ctx context.Context, res *resource, info requestInfo, strategy registry.Strategy, dryRun, allowCreate bool,
	compute computeFunc) (out runtime.Object, created bool, err error) {
	key := res.key(info.Namespace, info.Name)
	var release func()
	tryUpdate := func(current runtime.Object) (runtime.Object, error) {
		if release != nil {
			release()
			release = nil
		}
		cm, err := meta.Accessor(current)
		if err != nil {
			return nil, err
		}
		exists := cm.GetResourceVersion() != ""
		if !exists && !allowCreate {
			return nil, apierrors.NewNotFound(res.gr, info.Name)
		}
		next, err := compute(current, exists)
		if err != nil {
			return nil, err
		}
		nm, err := meta.Accessor(next)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if nm.GetName() != info.Name {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", nm.GetName(), info.Name))
		}
		if !exists {
			created = true
			nm.SetResourceVersion("")
			rel, err := s.prepareCreate(ctx, res, info.Namespace, next)
			if err != nil {
				return nil, err
			}
			release = rel
			return next, nil
		}
		created = false
		if rv := nm.GetResourceVersion(); rv != "" && rv != cm.GetResourceVersion() {
			return nil, apierrors.NewConflict(res.gr, info.Name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		// Fields only the server sets.
		nm.SetResourceVersion(cm.GetResourceVersion())
		nm.SetUID(cm.GetUID())
		nm.SetCreationTimestamp(cm.GetCreationTimestamp())
		nm.SetDeletionTimestamp(cm.GetDeletionTimestamp())
		nm.SetDeletionGracePeriodSeconds(cm.GetDeletionGracePeriodSeconds())
		nm.SetSelfLink("")
		if res.Namespaced {
			nm.SetNamespace(cm.GetNamespace())
		}
		if cm.GetDeletionTimestamp() != nil && len(nm.GetFinalizers()) > 0 {
			// No new finalizers on an object being deleted.
			if errs := apivalidation.ValidateNoNewFinalizers(nm.GetFinalizers(), cm.GetFinalizers(), field.NewPath("metadata", "finalizers")); len(errs) > 0 {
				return nil, apierrors.NewInvalid(res.gvk.GroupKind(), info.Name, errs)
			}
		}
		strategy.Default(next)
		strategy.PrepareForUpdate(ctx, next, current)
		errs := apivalidation.ValidateObjectMetaAccessor(nm, res.Namespaced, res.nameValidator(), field.NewPath("metadata"))
		errs = append(errs, apivalidation.ValidateObjectMetaAccessorUpdate(nm, cm, field.NewPath("metadata"))...)
		errs = append(errs, strategy.ValidateUpdate(ctx, next, current)...)
		if len(errs) > 0 {
			return nil, apierrors.NewInvalid(res.gvk.GroupKind(), info.Name, errs)
		}
		if res.Allocator != nil && info.Subresource == "" {
			rel, errs := res.Allocator.Allocate(ctx, next, current)
			if len(errs) > 0 {
				return nil, apierrors.NewInvalid(res.gvk.GroupKind(), info.Name, errs)
			}
			release = rel
		}
		return next, nil
	}

	if dryRun {
		current := res.New()
		err := res.store.Get(ctx, key, storage.GetOptions{}, current)
		if storage.IsNotFound(err) {
			current = res.New()
			err = nil
		}
		if err != nil {
			return nil, false, err
		}
		out, err := tryUpdate(current)
		if release != nil {
			release()
		}
		return out, created, err
	}
	out = res.New()
	err = res.store.GuaranteedUpdate(ctx, key, out, allowCreate, nil, tryUpdate)
	if err != nil {
		if release != nil {
			release()
		}
		return nil, false, err
	}
	// Removing the last finalizer of an object being deleted deletes it (a
	// namespace also waits for its spec finalizers: see finalize).
	if m, merr := meta.Accessor(out); merr == nil && m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0 && !hasSpecFinalizers(out) {
		if g := m.GetDeletionGracePeriodSeconds(); g == nil || *g == 0 {
			rv := m.GetResourceVersion()
			deleted := res.New()
			if derr := res.store.Delete(ctx, key, deleted, &storage.Preconditions{ResourceVersion: &rv}, nil); derr == nil {
				if res.Allocator != nil {
					res.Allocator.Release(deleted)
				}
				return deleted, false, nil
			}
		}
	}
	return out, created, nil
}

// delete serves DELETE of one object.
func (s *Server) delete(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	opts, err := s.deleteOptions(w, r)
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	out, deleted, err := s.deleteObject(r.Context(), res, info.Namespace, info.Name, opts)
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	code := http.StatusOK
	if !deleted {
		code = http.StatusAccepted
	}
	s.respond(w, r, res, code, out)
}

// deleteOptions reads DeleteOptions from the query and the body.
func (s *Server) deleteOptions(w http.ResponseWriter, r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	if err := decodeQuery(r.URL.Query(), opts); err != nil {
		return nil, err
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		dec, _, ok := s.codecs.decoderFor(r.Header.Get("Content-Type"), false)
		if !ok {
			return nil, apierrors.NewBadRequest("unsupported content type for DeleteOptions")
		}
		gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
		if _, _, err := dec.Decode(body, &gvk, opts); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding DeleteOptions: %v", err))
		}
	}
	var errs field.ErrorList
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	if opts.OrphanDependents != nil && opts.PropagationPolicy != nil {
		errs = append(errs, field.Invalid(field.NewPath("propagationPolicy"), *opts.PropagationPolicy, "orphanDependents and deletionPropagation cannot be both set"))
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("propagationPolicy"), *p, []string{"Background", "Foreground", "Orphan"}))
		}
	}
	for _, v := range opts.DryRun {
		if v != metav1.DryRunAll {
			errs = append(errs, field.NotSupported(field.NewPath("dryRun"), v, []string{"All"}))
		}
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "DeleteOptions"}, "", errs)
	}
	return opts, nil
}

// deleteObject deletes one object, or marks it for deletion when it has
// finalizers or a graceful-deletion period. deleted reports removal.
func (s *Server) deleteObject(ctx context.Context, res *resource, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	key := res.key(ns, name)
	dryRun := len(opts.DryRun) > 0
	for attempt := 0; ; attempt++ {
		current := res.New()
		if err := res.store.Get(ctx, key, storage.GetOptions{}, current); err != nil {
			return nil, false, err
		}
		cm, _ := meta.Accessor(current)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != cm.GetUID() {
				return nil, false, apierrors.NewConflict(res.gr, name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, cm.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != cm.GetResourceVersion() {
				return nil, false, apierrors.NewConflict(res.gr, name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, cm.GetResourceVersion()))
			}
		}
		next := current.DeepCopyObject()
		nm, _ := meta.Accessor(next)
		keep := false
		if res.GracefulDelete != nil {
			keep = res.GracefulDelete(ctx, next, opts)
		}
		if f := gcFinalizers(nm.GetFinalizers(), opts); f != nil {
			nm.SetFinalizers(f)
		}
		if len(nm.GetFinalizers()) > 0 {
			keep = true
			if nm.GetDeletionTimestamp() == nil {
				now := metav1.NewTime(s.now())
				nm.SetDeletionTimestamp(&now)
				zero := int64(0)
				nm.SetDeletionGracePeriodSeconds(&zero)
			}
		}
		if dryRun {
			return next, !keep, nil
		}
		rv := cm.GetResourceVersion()
		pre := &storage.Preconditions{ResourceVersion: &rv}
		if keep {
			if apiequality.Semantic.DeepEqual(next, current) {
				return current, false, nil
			}
			out := res.New()
			err := res.store.GuaranteedUpdate(ctx, key, out, false, pre, func(runtime.Object) (runtime.Object, error) { return next, nil })
			if storage.IsConflict(err) && attempt < 10 {
				continue
			}
			return out, false, err
		}
		out := res.New()
		err := res.store.Delete(ctx, key, out, pre, nil)
		if storage.IsConflict(err) && attempt < 10 {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if res.Allocator != nil {
			res.Allocator.Release(out)
		}
		return out, true, nil
	}
}

// deleteCollection serves DELETE of a collection: every selected object
// is deleted as by a single DELETE.
func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	_, so, err := s.listOptions(r, res)
	if err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	opts, err := s.deleteOptions(w, r)
	if err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	so.Predicate.Limit, so.Predicate.Continue = 0, ""
	list := res.NewList()
	if err := res.store.GetList(r.Context(), res.listKey(info.Namespace), so, list); err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	var out []runtime.Object
	for _, item := range items {
		m, _ := meta.Accessor(item)
		o, _, err := s.deleteObject(r.Context(), res, m.GetNamespace(), m.GetName(), opts)
		if err != nil && !storage.IsNotFound(err) && !apierrors.IsNotFound(err) {
			s.writeError(w, r, err, res.gr, m.GetName())
			return
		}
		if o != nil {
			out = append(out, o)
		}
	}
	if err := meta.SetList(list, out); err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	s.respond(w, r, res, http.StatusOK, list)
}

// gcFinalizers returns the finalizers with the garbage collector's
// orphan or foregroundDeletion finalizer set as the delete options ask
// (nil when nothing changes). Background, the default, adds none: the
// garbage collector removes the dependents after the owner is gone.
func gcFinalizers(have []string, opts *metav1.DeleteOptions) []string {
	var want, drop string
	switch {
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationForeground:
		want, drop = metav1.FinalizerDeleteDependents, metav1.FinalizerOrphanDependents
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationOrphan,
		opts.PropagationPolicy == nil && opts.OrphanDependents != nil && *opts.OrphanDependents:
		want, drop = metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationBackground,
		opts.PropagationPolicy == nil && opts.OrphanDependents != nil && !*opts.OrphanDependents:
		drop = metav1.FinalizerOrphanDependents
	default:
		return nil
	}
	out := make([]string, 0, len(have)+1)
	changed, found := false, false
	for _, f := range have {
		switch f {
		case drop:
			changed = true
			continue
		case want:
			found = true
		}
		out = append(out, f)
	}
	if want != "" && !found {
		out = append(out, want)
		changed = true
	}
	if !changed {
		return nil
	}
	return out
}

// hasSpecFinalizers reports a namespace whose content is still being
// removed.
func hasSpecFinalizers(obj runtime.Object) bool {
	ns, ok := obj.(*corev1.Namespace)
	return ok && len(ns.Spec.Finalizers) > 0
}
