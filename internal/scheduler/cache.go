package scheduler

import (
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// nodeCache is the scheduler's incremental view of nodes and the pods
// placed on them, including pods it assumed onto a node before the bind is
// seen in the informer.
type nodeCache struct {
	mu     sync.Mutex
	nodes  map[string]*framework.NodeInfo
	placed map[string]*corev1.Pod // pod key -> pod as accounted (spec.nodeName set)
	order  []string               // node names, sorted, rebuilt on node add/delete
	next   int                    // round-robin start for the next cycle
}

func newNodeCache() *nodeCache {
	return &nodeCache{nodes: map[string]*framework.NodeInfo{}, placed: map[string]*corev1.Pod{}}
}

func (c *nodeCache) setNode(n *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ni, ok := c.nodes[n.Name]; ok {
		ni.SetNode(n)
		return
	}
	ni := framework.NewNodeInfo(n)
	for _, p := range c.placed {
		if p.Spec.NodeName == n.Name {
			ni.AddPod(p)
		}
	}
	c.nodes[n.Name] = ni
	c.reorder()
}

func (c *nodeCache) deleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nodes, name)
	c.reorder()
}

func (c *nodeCache) reorder() {
	c.order = c.order[:0]
	for name := range c.nodes {
		c.order = append(c.order, name)
	}
	sort.Strings(c.order)
}

// place accounts for a pod on its node (informer-bound or assumed).
func (c *nodeCache) place(p *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key(p)
	if old, ok := c.placed[k]; ok {
		if old.Spec.NodeName == p.Spec.NodeName {
			return
		}
		if ni := c.nodes[old.Spec.NodeName]; ni != nil {
			ni.RemovePod(old)
		}
	}
	c.placed[k] = p
	if ni := c.nodes[p.Spec.NodeName]; ni != nil {
		ni.AddPod(p)
	}
}

// remove forgets a pod (deleted, finished, or a failed bind).
func (c *nodeCache) remove(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.placed[k]
	if !ok {
		return
	}
	delete(c.placed, k)
	if ni := c.nodes[old.Spec.NodeName]; ni != nil {
		ni.RemovePod(old)
	}
}
