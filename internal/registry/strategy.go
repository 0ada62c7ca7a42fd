package registry

import (
	"context"
	"reflect"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// BaseStrategy is the generic Strategy most resources start from: on
// create it clears status (when the resource has a status subresource) and
// sets generation 1; on update it keeps the old status and bumps generation
// when anything but metadata and status changed. Resources embed it and
// override what differs (DefaultFunc, ValidateFunc, ...).
type BaseStrategy struct {
	// HasStatus: the resource has a status subresource, so the main
	// endpoint must not write status.
	HasStatus bool
	// CreateOnUpdate is returned by AllowCreateOnUpdate.
	CreateOnUpdate bool

	DefaultFunc        func(obj runtime.Object)
	ValidateFunc       func(ctx context.Context, obj runtime.Object) field.ErrorList
	ValidateUpdateFunc func(ctx context.Context, obj, old runtime.Object) field.ErrorList
	// PrepareForCreateFunc and PrepareForUpdateFunc run after the generic
	// preparation.
	PrepareForCreateFunc func(ctx context.Context, obj runtime.Object)
	PrepareForUpdateFunc func(ctx context.Context, obj, old runtime.Object)
}

var _ Strategy = &BaseStrategy{}

func (s *BaseStrategy) Default(obj runtime.Object) {
	if s.DefaultFunc != nil {
		s.DefaultFunc(obj)
	}
}

func (s *BaseStrategy) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	if s.HasStatus {
		ResetField(obj, "Status")
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetGeneration(1)
	}
	if s.PrepareForCreateFunc != nil {
		s.PrepareForCreateFunc(ctx, obj)
	}
}

func (s *BaseStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	if s.HasStatus {
		CopyField(obj, old, "Status")
	}
	newMeta, err1 := meta.Accessor(obj)
	oldMeta, err2 := meta.Accessor(old)
	if err1 == nil && err2 == nil {
		newMeta.SetGeneration(oldMeta.GetGeneration())
		if SpecChanged(obj, old) {
			newMeta.SetGeneration(oldMeta.GetGeneration() + 1)
		}
	}
	if s.PrepareForUpdateFunc != nil {
		s.PrepareForUpdateFunc(ctx, obj, old)
	}
}

func (s *BaseStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	if s.ValidateFunc != nil {
		return s.ValidateFunc(ctx, obj)
	}
	return nil
}

func (s *BaseStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	if s.ValidateUpdateFunc != nil {
		return s.ValidateUpdateFunc(ctx, obj, old)
	}
	return s.Validate(ctx, obj)
}

func (s *BaseStrategy) AllowCreateOnUpdate() bool { return s.CreateOnUpdate }

// StatusStrategy wraps a resource's strategy for its status subresource:
// everything but status is carried over from the old object, generation is
// untouched, and only the parent's update validation runs.
type StatusStrategy struct {
	Parent Strategy
}

var _ Strategy = &StatusStrategy{}

func (s *StatusStrategy) Default(obj runtime.Object)                               { s.Parent.Default(obj) }
func (s *StatusStrategy) PrepareForCreate(ctx context.Context, obj runtime.Object) {}
func (s *StatusStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	// Keep the new status, take every other top-level field from old,
	// except metadata which the API server handles (labels/annotations may
	// change through status as upstream allows for some kinds; we keep
	// upstream's common rule: metadata changes other than those are
	// dropped by the caller).
	status := reflect.ValueOf(obj).Elem().FieldByName("Status")
	if !status.IsValid() {
		return
	}
	saved := reflect.New(status.Type()).Elem()
	saved.Set(status)
	ov := reflect.ValueOf(old).Elem()
	nv := reflect.ValueOf(obj).Elem()
	for i := 0; i < nv.NumField(); i++ {
		name := nv.Type().Field(i).Name
		if name == "TypeMeta" || name == "ObjectMeta" || name == "Status" {
			continue
		}
		nv.Field(i).Set(ov.Field(i))
	}
	if nm, err := meta.Accessor(obj); err == nil {
		if om, err := meta.Accessor(old); err == nil {
			nm.SetGeneration(om.GetGeneration())
		}
	}
}
func (s *StatusStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return nil
}
func (s *StatusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return nil
}
func (s *StatusStrategy) AllowCreateOnUpdate() bool { return false }

// ResetField sets the named top-level struct field of obj to its zero value.
func ResetField(obj runtime.Object, name string) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return
	}
	f := v.Elem().FieldByName(name)
	if f.IsValid() && f.CanSet() {
		f.Set(reflect.Zero(f.Type()))
	}
}

// CopyField copies the named top-level struct field from src to dst.
func CopyField(dst, src runtime.Object, name string) {
	dv, sv := reflect.ValueOf(dst), reflect.ValueOf(src)
	if dv.Kind() != reflect.Pointer || sv.Kind() != reflect.Pointer || dv.Type() != sv.Type() {
		return
	}
	df, sf := dv.Elem().FieldByName(name), sv.Elem().FieldByName(name)
	if df.IsValid() && sf.IsValid() && df.CanSet() {
		df.Set(sf)
	}
}

// SpecChanged reports whether any top-level field other than TypeMeta,
// ObjectMeta and Status differs between two objects of the same type. For
// kinds without a spec (ConfigMap, Secret) data changes count, as upstream
// does not track generation for them either way.
func SpecChanged(obj, old runtime.Object) bool {
	nv, ov := reflect.ValueOf(obj), reflect.ValueOf(old)
	if nv.Kind() != reflect.Pointer || ov.Kind() != reflect.Pointer || nv.Type() != ov.Type() {
		return false
	}
	nv, ov = nv.Elem(), ov.Elem()
	for i := 0; i < nv.NumField(); i++ {
		switch nv.Type().Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		if !apiequality.Semantic.DeepEqual(nv.Field(i).Interface(), ov.Field(i).Interface()) {
			return true
		}
	}
	return false
}
