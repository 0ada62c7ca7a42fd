package garbagecollector

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
)

func (c *Controller) client(id identity) (metadata.ResourceInterface, error) {
	info, ok := c.kinds[id.gvk()]
	if !ok {
		return nil, fmt.Errorf("no watched resource serves %s", id.gvk())
	}
	r := c.meta.Resource(info.gvr)
	if info.namespaced {
		return r.Namespace(id.Namespace), nil
	}
	return r, nil
}

// live reads an object's current metadata; nil when it no longer exists
// (or a namesake with another UID replaced it).
func (c *Controller) live(ctx context.Context, id identity) (*metav1.PartialObjectMetadata, error) {
	rc, err := c.client(id)
	if err != nil {
		return nil, err
	}
	m, err := rc.Get(ctx, id.Name, metav1.GetOptions{})
	if isGone(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if m.UID != id.UID {
		return nil, nil
	}
	return m, nil
}

type ownerState int

const (
	solid    ownerState = iota // exists, not waiting on dependents
	dangling                   // gone
	waiting                    // being deleted in the foreground
)

// ownerStateOf classifies an owner reference of an object in namespace ns.
func (c *Controller) ownerStateOf(ctx context.Context, ns string, ref metav1.OwnerReference) (ownerState, error) {
	c.absentM.Lock()
	gone := c.absent.Has(ref.UID)
	c.absentM.Unlock()
	if gone {
		return dangling, nil
	}
	if n := c.graph.get(ref.UID); n != nil {
		s := c.graph.snapshot(n)
		if !s.virtual {
			if s.deletingDependents {
				return waiting, nil
			}
			return solid, nil
		}
	}
	id := identity{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: ns, Name: ref.Name, UID: ref.UID}
	if info, ok := c.kinds[id.gvk()]; ok && !info.namespaced {
		id.Namespace = ""
	} else if !ok {
		// Not a kind this cluster serves: it cannot be verified, so it is
		// kept, as upstream keeps references it cannot resolve.
		return solid, nil
	}
	m, err := c.live(ctx, id)
	if err != nil {
		return solid, err
	}
	if m == nil {
		c.markAbsent(ref.UID)
		return dangling, nil
	}
	if m.DeletionTimestamp != nil && hasFinalizer(m, metav1.FinalizerDeleteDependents) {
		return waiting, nil
	}
	return solid, nil
}

func (c *Controller) markAbsent(uid types.UID) {
	c.absentM.Lock()
	defer c.absentM.Unlock()
	if c.absent.Len() > 50000 {
		c.absent = c.absent.Clear()
	}
	c.absent.Insert(uid)
}

// attemptToDelete deletes an object whose owners are all gone, or drops
// its dangling owner references when some owner remains.
func (c *Controller) attemptToDelete(ctx context.Context, uid types.UID) error {
	n := c.graph.get(uid)
	if n == nil {
		return nil
	}
	s := c.graph.snapshot(n)
	if s.virtual {
		ns := s.id.Namespace
		state, err := c.ownerStateOf(ctx, ns, metav1.OwnerReference{APIVersion: s.id.APIVersion, Kind: s.id.Kind, Name: s.id.Name, UID: s.id.UID})
		if err != nil {
			return err
		}
		if state == dangling {
			c.events.push(event{typ: virtualAbsent, uid: uid})
		}
		return nil
	}
	if s.beingDeleted && !s.deletingDependents {
		return nil
	}
	if s.deletingDependents {
		return c.processDeletingDependents(ctx, n)
	}
	if len(s.owners) == 0 {
		return nil
	}
	latest, err := c.live(ctx, s.id)
	if err != nil || latest == nil {
		return err
	}
	if latest.DeletionTimestamp != nil {
		return nil
	}
	var keep, drop []metav1.OwnerReference
	var solidN, waitingN int
	for _, ref := range latest.OwnerReferences {
		st, err := c.ownerStateOf(ctx, latest.Namespace, ref)
		if err != nil {
			return err
		}
		switch st {
		case solid:
			solidN++
			keep = append(keep, ref)
		case waiting:
			waitingN++
			drop = append(drop, ref)
		default:
			drop = append(drop, ref)
		}
	}
	rc, err := c.client(s.id)
	if err != nil {
		return err
	}
	switch {
	case solidN > 0:
		if len(drop) == 0 {
			return nil
		}
		return c.patchOwners(ctx, rc, latest, keep)
	case waitingN > 0 && c.graph.dependentCount(n) > 0:
		// The owner waits for us; we wait for our own dependents: stop
		// blocking the owner only once ours are gone, by deleting in the
		// foreground too.
		policy := metav1.DeletePropagationForeground
		return c.deleteObject(ctx, rc, latest, policy)
	}
	policy := metav1.DeletePropagationBackground
	switch {
	case hasFinalizer(latest, metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case hasFinalizer(latest, metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	return c.deleteObject(ctx, rc, latest, policy)
}

func (c *Controller) deleteObject(ctx context.Context, rc metadata.ResourceInterface, m *metav1.PartialObjectMetadata, policy metav1.DeletionPropagation) error {
	uid := m.UID
	err := rc.Delete(ctx, m.Name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
	if isGone(err) {
		return nil
	}
	if err == nil {
		c.log.Debug("garbage collector deleted", "kind", m.Kind, "namespace", m.Namespace, "name", m.Name, "propagation", policy)
	}
	return err
}

// patchOwners replaces an object's owner references, guarded by its UID
// and resourceVersion (a conflict retries with fresh state).
func (c *Controller) patchOwners(ctx context.Context, rc metadata.ResourceInterface, m *metav1.PartialObjectMetadata, refs []metav1.OwnerReference) error {
	if refs == nil {
		refs = []metav1.OwnerReference{}
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": refs, "uid": m.UID, "resourceVersion": m.ResourceVersion,
	}})
	if err != nil {
		return err
	}
	_, err = rc.Patch(ctx, m.Name, types.MergePatchType, body, metav1.PatchOptions{})
	if isGone(err) {
		return nil
	}
	return err
}

// removeFinalizer removes one finalizer from the live object.
func (c *Controller) removeFinalizer(ctx context.Context, id identity, f string) error {
	m, err := c.live(ctx, id)
	if err != nil || m == nil {
		return err
	}
	if !hasFinalizer(m, f) {
		return nil
	}
	keep := []string{}
	for _, x := range m.Finalizers {
		if x != f {
			keep = append(keep, x)
		}
	}
	rc, err := c.client(id)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"finalizers": keep, "uid": m.UID, "resourceVersion": m.ResourceVersion,
	}})
	if err != nil {
		return err
	}
	_, err = rc.Patch(ctx, m.Name, types.MergePatchType, body, metav1.PatchOptions{})
	if isGone(err) {
		return nil
	}
	return err
}

// processDeletingDependents removes the foregroundDeletion finalizer once
// no dependent blocks the owner; until then it nudges blocking dependents
// that are themselves deleting in the foreground.
func (c *Controller) processDeletingDependents(ctx context.Context, n *node) error {
	s := c.graph.snapshot(n)
	blocking := 0
	for _, d := range c.graph.dependentsOf(n) {
		ds := c.graph.snapshot(d)
		for _, ref := range ds.owners {
			if ref.UID == s.id.UID && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
				blocking++
				if ds.deletingDependents {
					c.del.Add(ds.id.UID)
				} else if !ds.beingDeleted {
					c.del.Add(ds.id.UID)
				}
			}
		}
	}
	if blocking > 0 {
		return nil
	}
	return c.removeFinalizer(ctx, s.id, metav1.FinalizerDeleteDependents)
}

// attemptToOrphan removes the owner's references from its dependents, then
// the orphan finalizer from the owner.
func (c *Controller) attemptToOrphan(ctx context.Context, uid types.UID) error {
	n := c.graph.get(uid)
	if n == nil {
		return nil
	}
	s := c.graph.snapshot(n)
	if !s.orphaning {
		return nil
	}
	for _, d := range c.graph.dependentsOf(n) {
		ds := c.graph.snapshot(d)
		if ds.virtual {
			continue
		}
		m, err := c.live(ctx, ds.id)
		if err != nil {
			return err
		}
		if m == nil {
			continue
		}
		var keep []metav1.OwnerReference
		found := false
		for _, ref := range m.OwnerReferences {
			if ref.UID == uid {
				found = true
				continue
			}
			keep = append(keep, ref)
		}
		if !found {
			continue
		}
		rc, err := c.client(ds.id)
		if err != nil {
			return err
		}
		if err := c.patchOwners(ctx, rc, m, keep); err != nil {
			return fmt.Errorf("orphan %s/%s: %w", m.Namespace, m.Name, err)
		}
	}
	return c.removeFinalizer(ctx, s.id, metav1.FinalizerOrphanDependents)
}
