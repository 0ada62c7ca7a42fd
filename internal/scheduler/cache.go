package scheduler

import (
	"sort"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

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
	list   []*framework.NodeInfo  // the nodes in order
	next   int                    // round-robin start for the next cycle
	// Placed pods (on known nodes) with pod affinity terms, and with
	// required anti-affinity terms: while these are 0, pods without terms
	// of their own cost the affinity plugin nothing.
	withAffinity, withRequiredAnti int
	// nominated: node -> pods nominated to it; nominatedTo: pod key ->
	// node (nominator.go).
	nominated   map[string][]*corev1.Pod
	nominatedTo map[string]string
	nominations atomic.Int64 // len(nominatedTo), readable without mu
	// preempting: pods whose preemption's API calls are under way.
	preempting map[string]bool
}

func newNodeCache() *nodeCache {
	return &nodeCache{nodes: map[string]*framework.NodeInfo{}, placed: map[string]*corev1.Pod{}, preempting: map[string]bool{}}
}

// track runs change on ni and keeps the affinity counts in step.
func (c *nodeCache) track(ni *framework.NodeInfo, change func()) {
	a, r := len(ni.PodsWithAffinity), len(ni.PodsWithRequiredAntiAffinity)
	change()
	c.withAffinity += len(ni.PodsWithAffinity) - a
	c.withRequiredAnti += len(ni.PodsWithRequiredAntiAffinity) - r
}

func (c *nodeCache) setNode(n *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ni, ok := c.nodes[n.Name]; ok {
		ni.SetNode(n)
		return
	}
	ni := framework.NewNodeInfo(n)
	c.track(ni, func() {
		for _, p := range c.placed {
			if p.Spec.NodeName == n.Name {
				ni.AddPod(p)
			}
		}
	})
	c.nodes[n.Name] = ni
	c.reorder()
}

func (c *nodeCache) deleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ni, ok := c.nodes[name]; ok {
		c.withAffinity -= len(ni.PodsWithAffinity)
		c.withRequiredAnti -= len(ni.PodsWithRequiredAntiAffinity)
	}
	delete(c.nodes, name)
	c.reorder()
}

func (c *nodeCache) reorder() {
	c.order = c.order[:0]
	for name := range c.nodes {
		c.order = append(c.order, name)
	}
	sort.Strings(c.order)
	c.list = make([]*framework.NodeInfo, len(c.order))
	for i, name := range c.order {
		c.list[i] = c.nodes[name]
	}
}

// snapshot is the cluster for one cycle; the caller holds c.mu for the
// whole cycle.
func (c *nodeCache) snapshot(l framework.Listers) *framework.Snapshot {
	return &framework.Snapshot{Nodes: c.list, PodsWithAffinity: c.withAffinity, PodsWithRequiredAntiAffinity: c.withRequiredAnti, Listers: l}
}

// place accounts for a pod on its node (informer-bound or assumed); a pod
// whose labels or deletion changed is accounted afresh, as the
// constraint plugins match on them.
func (c *nodeCache) place(p *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key(p)
	if old, ok := c.placed[k]; ok {
		if old.Spec.NodeName == p.Spec.NodeName && labels.Equals(old.Labels, p.Labels) &&
			(old.DeletionTimestamp == nil) == (p.DeletionTimestamp == nil) {
			return
		}
		if ni := c.nodes[old.Spec.NodeName]; ni != nil {
			c.track(ni, func() { ni.RemovePod(old) })
		}
	}
	c.placed[k] = p
	if ni := c.nodes[p.Spec.NodeName]; ni != nil {
		c.track(ni, func() { ni.AddPod(p) })
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
		c.track(ni, func() { ni.RemovePod(old) })
	}
}

// assume places a pod the scheduler chose a node for; it no longer waits
// on a nomination.
func (c *nodeCache) assume(p *corev1.Pod) {
	c.unnominate(key(p))
	c.place(p)
}

// nominateFromInformer records the nomination in a pod's status (set by
// this or an earlier scheduler), unless the pod is already assumed.
func (c *nodeCache) nominateFromInformer(p *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, assumed := c.placed[key(p)]; assumed {
		return
	}
	c.nominate(p, p.Status.NominatedNodeName)
}
