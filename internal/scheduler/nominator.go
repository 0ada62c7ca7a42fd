package scheduler

import (
	corev1 "k8s.io/api/core/v1"
)

// The nominator half of the node cache: pods that preempted others on a
// node and wait for the room to free up (status.nominatedNodeName). Cycles
// for pods of lower or equal priority count them on that node, so the
// freed room is not taken by the pods the preemption was for; cycles for
// pods of higher priority ignore them. The caller holds c.mu.

// nominate records pod as nominated to node (replacing any nomination).
func (c *nodeCache) nominate(pod *corev1.Pod, node string) {
	k := key(pod)
	c.unnominateLocked(k)
	if c.nominated == nil {
		c.nominated, c.nominatedTo = map[string][]*corev1.Pod{}, map[string]string{}
	}
	c.nominated[node] = append(c.nominated[node], pod)
	c.nominatedTo[k] = node
	c.nominations.Add(1)
}

// unnominateLocked drops pod k's nomination; it reports whether it had one.
func (c *nodeCache) unnominateLocked(k string) bool {
	node, ok := c.nominatedTo[k]
	if !ok {
		return false
	}
	delete(c.nominatedTo, k)
	c.nominations.Add(-1)
	pods := c.nominated[node]
	for i, p := range pods {
		if key(p) == k {
			pods = append(pods[:i:i], pods[i+1:]...)
			break
		}
	}
	if len(pods) == 0 {
		delete(c.nominated, node)
	} else {
		c.nominated[node] = pods
	}
	return true
}

// unnominate is unnominateLocked taking the lock (only when some pod is
// nominated: informer handlers call it for every pod update).
func (c *nodeCache) unnominate(k string) bool {
	if c.nominations.Load() == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unnominateLocked(k)
}

// prune drops the nominations of pods that are no longer pending here
// (a safety net for events raced by a nomination).
func (c *nodeCache) prune(pending func(k string) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	dropped := false
	for k := range c.nominatedTo {
		if !pending(k) {
			dropped = c.unnominateLocked(k) || dropped
		}
	}
	return dropped
}

// nominatedNode is where pod k is nominated ("" when nowhere).
func (c *nodeCache) nominatedNode(k string) string { return c.nominatedTo[k] }

// nominatedFor lists the pods nominated to node that a cycle for pod must
// count: the others of at least its priority.
func (c *nodeCache) nominatedFor(pod *corev1.Pod, node string) []*corev1.Pod {
	pods := c.nominated[node]
	if len(pods) == 0 {
		return nil
	}
	var out []*corev1.Pod
	prio, k := podPriority(pod), key(pod)
	for _, p := range pods {
		if podPriority(p) >= prio && key(p) != k {
			out = append(out, p)
		}
	}
	return out
}

// lowerNominated lists the pods nominated to node with a lower priority
// than pod's.
func (c *nodeCache) lowerNominated(pod *corev1.Pod, node string) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range c.nominated[node] {
		if podPriority(p) < podPriority(pod) {
			out = append(out, p)
		}
	}
	return out
}

// podPriority is spec.priority, 0 when unset (as upstream's PodPriority).
func podPriority(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}
