package garbagecollector

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// buildGraph applies informer events to the graph, one at a time, and
// enqueues the work they imply.
func (c *Controller) buildGraph() {
	for {
		e, ok := c.events.pop()
		if !ok {
			return
		}
		c.apply(e)
	}
}

func (c *Controller) identityOf(e event) identity {
	return identity{APIVersion: e.gvk.GroupVersion().String(), Kind: e.gvk.Kind, Namespace: e.obj.Namespace, Name: e.obj.Name, UID: e.obj.UID}
}

func (c *Controller) apply(e event) {
	g := c.graph
	g.mu.Lock()
	var del, orphan []types.UID
	switch e.typ {
	case virtualAbsent:
		n := g.nodes[e.uid]
		if n == nil || !n.virtual {
			break
		}
		delete(g.nodes, e.uid)
		for uid := range n.dependents {
			del = append(del, uid)
		}
	case deleteEvent:
		n := g.nodes[e.obj.UID]
		if n == nil {
			break
		}
		delete(g.nodes, n.id.UID)
		for _, ref := range n.owners {
			del = append(del, c.unlink(ref.UID, n)...)
		}
		for uid := range n.dependents {
			del = append(del, uid)
		}
	default:
		n := g.nodes[e.obj.UID]
		id := c.identityOf(e)
		switch {
		case n == nil:
			n = &node{id: id, dependents: map[types.UID]*node{}}
			g.nodes[id.UID] = n
			n.owners = e.obj.OwnerReferences
			for _, ref := range n.owners {
				del = append(del, c.link(ref, n)...)
			}
		default:
			n.id = id
			n.virtual = false
			added, removed := diffOwners(n.owners, e.obj.OwnerReferences)
			n.owners = e.obj.OwnerReferences
			for _, ref := range removed {
				del = append(del, c.unlink(ref.UID, n)...)
			}
			for _, ref := range added {
				del = append(del, c.link(ref, n)...)
			}
		}
		wasDeleting := n.deletingDependents
		n.beingDeleted = e.obj.DeletionTimestamp != nil
		n.deletingDependents = n.beingDeleted && hasFinalizer(e.obj, metav1.FinalizerDeleteDependents)
		n.orphaning = n.beingDeleted && hasFinalizer(e.obj, metav1.FinalizerOrphanDependents)
		if n.orphaning {
			orphan = append(orphan, n.id.UID)
		}
		if n.deletingDependents && !wasDeleting {
			for uid := range n.dependents {
				del = append(del, uid)
			}
		}
		if n.deletingDependents {
			del = append(del, n.id.UID)
		}
	}
	g.mu.Unlock()
	for _, uid := range del {
		c.del.Add(uid)
	}
	for _, uid := range orphan {
		c.orphan.Add(uid)
	}
}

// link records n as a dependent of ref's owner, creating a virtual owner
// to verify when the owner is unknown. It returns UIDs to check. The
// caller holds the lock.
func (c *Controller) link(ref metav1.OwnerReference, n *node) []types.UID {
	g := c.graph
	owner := g.nodes[ref.UID]
	var out []types.UID
	if owner == nil {
		ns := n.id.Namespace
		if info, ok := c.kinds[identity{APIVersion: ref.APIVersion, Kind: ref.Kind}.gvk()]; ok && !info.namespaced {
			ns = ""
		}
		owner = &node{id: identity{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: ns, Name: ref.Name, UID: ref.UID},
			dependents: map[types.UID]*node{}, virtual: true}
		g.nodes[ref.UID] = owner
		out = append(out, ref.UID)
	} else if owner.virtual {
		out = append(out, n.id.UID) // owner under verification: check n too
	}
	owner.dependents[n.id.UID] = n
	if owner.deletingDependents {
		out = append(out, n.id.UID)
	}
	return out
}

// unlink drops n from an owner's dependents. The caller holds the lock.
func (c *Controller) unlink(ownerUID types.UID, n *node) []types.UID {
	owner := c.graph.nodes[ownerUID]
	if owner == nil {
		return nil
	}
	delete(owner.dependents, n.id.UID)
	if owner.virtual && len(owner.dependents) == 0 {
		delete(c.graph.nodes, ownerUID)
		return nil
	}
	if owner.deletingDependents {
		return []types.UID{ownerUID}
	}
	return nil
}

func diffOwners(old, cur []metav1.OwnerReference) (added, removed []metav1.OwnerReference) {
	oldSet := map[types.UID]bool{}
	for _, r := range old {
		oldSet[r.UID] = true
	}
	curSet := map[types.UID]bool{}
	for _, r := range cur {
		curSet[r.UID] = true
		if !oldSet[r.UID] {
			added = append(added, r)
		}
	}
	for _, r := range old {
		if !curSet[r.UID] {
			removed = append(removed, r)
		}
	}
	return added, removed
}
