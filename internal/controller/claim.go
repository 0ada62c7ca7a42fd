package controller

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Claimer decides which objects a controller owns, as upstream's
// ControllerRefManager does: it keeps owned objects that still match the
// selector, releases owned ones that no longer match, and adopts orphans
// that match (unless the owner is being deleted).
type Claimer struct {
	Owner    metav1.Object
	Kind     schema.GroupVersionKind
	Selector labels.Selector
	// Patch applies a merge patch to the named object in the owner's
	// namespace.
	Patch func(ctx context.Context, name string, patch []byte) error
	// CanAdopt re-checks the owner with a live read before the first
	// adoption (an owner deleted meanwhile must not adopt).
	CanAdopt func(ctx context.Context) error
	adoptOK  *error
}

// Claim returns whether obj now belongs to the owner.
func (c *Claimer) Claim(ctx context.Context, obj metav1.Object) (bool, error) {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref != nil {
		if ref.UID != c.Owner.GetUID() {
			return false, nil
		}
		if c.Selector.Matches(labels.Set(obj.GetLabels())) {
			return true, nil
		}
		if c.Owner.GetDeletionTimestamp() != nil {
			return false, nil
		}
		return false, c.release(ctx, obj)
	}
	if c.Owner.GetDeletionTimestamp() != nil || !c.Selector.Matches(labels.Set(obj.GetLabels())) {
		return false, nil
	}
	if obj.GetDeletionTimestamp() != nil {
		return false, nil
	}
	if len(obj.GetNamespace()) > 0 && obj.GetNamespace() != c.Owner.GetNamespace() {
		return false, nil
	}
	if c.adoptOK == nil {
		var err error
		if c.CanAdopt != nil {
			err = c.CanAdopt(ctx)
		}
		c.adoptOK = &err
	}
	if *c.adoptOK != nil {
		return false, nil
	}
	if err := c.adopt(ctx, obj); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (c *Claimer) adopt(ctx context.Context, obj metav1.Object) error {
	ref := NewControllerRef(c.Owner, c.Kind)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": append(obj.GetOwnerReferences(), *ref),
		"uid":             obj.GetUID(),
	}})
	if err != nil {
		return err
	}
	return c.Patch(ctx, obj.GetName(), patch)
}

func (c *Claimer) release(ctx context.Context, obj metav1.Object) error {
	var keep []metav1.OwnerReference
	for _, r := range obj.GetOwnerReferences() {
		if r.UID != c.Owner.GetUID() {
			keep = append(keep, r)
		}
	}
	if keep == nil {
		keep = []metav1.OwnerReference{}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": keep,
		"uid":             obj.GetUID(),
	}})
	if err != nil {
		return err
	}
	err = c.Patch(ctx, obj.GetName(), patch)
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
		return nil
	}
	return err
}

// ClaimPods filters pods to those the owner controls, adopting and
// releasing on the way.
func (c *Claimer) ClaimPods(ctx context.Context, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	var errs []error
	for _, p := range pods {
		ok, err := c.Claim(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out = append(out, p)
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("claim pods: %w", errs[0])
	}
	return out, nil
}
