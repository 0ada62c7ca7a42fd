package garbagecollector

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// identity names an object in the graph.
type identity struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	UID        types.UID
}

func (id identity) gvk() schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(id.APIVersion, id.Kind)
}

// node is one object. A virtual node is known only from a dependent's
// owner reference; a worker verifies whether it exists.
type node struct {
	id                 identity
	owners             []metav1.OwnerReference
	dependents         map[types.UID]*node
	virtual            bool
	beingDeleted       bool
	deletingDependents bool // deletionTimestamp + foregroundDeletion finalizer
	orphaning          bool // deletionTimestamp + orphan finalizer
}

// graph is the ownership graph.
type graph struct {
	mu    sync.RWMutex
	nodes map[types.UID]*node
}

func newGraph() *graph { return &graph{nodes: map[types.UID]*node{}} }

func (g *graph) get(uid types.UID) *node {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.nodes[uid]
}

// dependentsOf returns a snapshot of n's dependents.
func (g *graph) dependentsOf(n *node) []*node {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*node, 0, len(n.dependents))
	for _, d := range n.dependents {
		out = append(out, d)
	}
	return out
}

func (g *graph) snapshot(n *node) node {
	g.mu.RLock()
	defer g.mu.RUnlock()
	c := *n
	c.owners = append([]metav1.OwnerReference(nil), n.owners...)
	c.dependents = nil
	return c
}

func (g *graph) dependentCount(n *node) int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(n.dependents)
}
