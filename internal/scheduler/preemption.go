package scheduler

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Preemption, as upstream's DefaultPreemption PostFilter: when a pod fits
// nowhere, find the nodes where removing pods of lower priority would let
// it fit (every filter re-run on the node without them, the constraint
// plugins' cycle state updated through their PreFilterExtensions), keep
// as many of those pods as still lets it fit, pick the node whose victims
// matter least, nominate the pod there and delete the victims.

// candidate is a node where the pod fits once victims are gone.
type candidate struct {
	node string
	// victims, the most important first (priority, then start time).
	victims       []*corev1.Pod
	pdbViolations int
}

// The share of nodes the dry run looks for candidates on, and the least
// number, as upstream's minCandidateNodesPercentage/Absolute.
const (
	minCandidateNodesPercentage = 10
	minCandidateNodesAbsolute   = 100
)

// preemptionMessage is the DisruptionTarget condition's message.
const preemptionMessage = ": preempting to accommodate a higher priority pod"

// eligibleToPreempt reports whether the cycle's pod may preempt: not with
// preemptionPolicy Never, not while its last preemption's API calls run,
// and not while lower-priority pods on the node it is nominated to are
// still terminating (they are its earlier victims: wait for them). The
// caller holds the cache lock.
func (s *Scheduler) eligibleToPreempt(cy *cycle) bool {
	pod := cy.pod
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == corev1.PreemptNever {
		return false
	}
	c := s.cache
	k := key(pod)
	if c.preempting[k] {
		return false
	}
	node := c.nominatedNode(k)
	if node == "" {
		node = pod.Status.NominatedNodeName
	}
	if node == "" {
		return true
	}
	if st := cy.diagnosis[node]; st != nil && st.Code == framework.UnschedulableAndUnresolvable {
		return true // the nominated node can no longer help
	}
	if ni := c.nodes[node]; ni != nil {
		prio := podPriority(pod)
		for _, p := range ni.Pods {
			if p.DeletionTimestamp != nil && podPriority(p) < prio {
				return false
			}
		}
	}
	return true
}

// findCandidates runs the dry run over the nodes where preemption may
// help (those a filter rejected as Unschedulable, not Unresolvable). The
// caller holds the cache lock.
func (s *Scheduler) findCandidates(ctx context.Context, cy *cycle, pdbs []*policyv1.PodDisruptionBudget) []candidate {
	limit := max(cy.total*minCandidateNodesPercentage/100, minCandidateNodesAbsolute)
	var out []candidate
	for _, n := range cy.snap.Nodes {
		if st := cy.diagnosis[n.Node.Name]; st == nil || st.Code != framework.Unschedulable {
			continue
		}
		victims, violations, ok := s.selectVictims(ctx, cy, n, pdbs)
		if !ok {
			continue
		}
		out = append(out, candidate{node: n.Node.Name, victims: victims, pdbViolations: violations})
		if len(out) >= limit {
			break
		}
	}
	return out
}

// selectVictims finds the fewest, least important pods on n whose removal
// lets the cycle's pod fit: it removes every lower-priority pod, checks
// the pod fits, then puts pods back (those whose eviction would violate a
// PodDisruptionBudget first, each group most important first) while it
// still fits. It reports the victims and how many of them violate a PDB.
func (s *Scheduler) selectVictims(ctx context.Context, cy *cycle, n *framework.NodeInfo, pdbs []*policyv1.PodDisruptionBudget) ([]*corev1.Pod, int, bool) {
	pod := cy.pod
	prio := podPriority(pod)
	var potential []*corev1.Pod
	for _, p := range n.Pods {
		if podPriority(p) < prio {
			potential = append(potential, p)
		}
	}
	if len(potential) == 0 {
		return nil, 0, false // nothing to preempt: spare the copies
	}
	state, ni := cy.state.Clone(), n.Clone()
	remove := func(p *corev1.Pod) {
		ni.RemovePod(p)
		for _, ext := range cy.exts {
			ext.RemovePod(ctx, state, pod, p, ni)
		}
	}
	add := func(p *corev1.Pod) {
		ni.AddPod(p)
		for _, ext := range cy.exts {
			ext.AddPod(ctx, state, pod, p, ni)
		}
	}
	for _, p := range potential {
		remove(p)
	}
	if st, _ := s.filterNode(ctx, cy, state, ni); !st.IsSuccess() {
		return nil, 0, false
	}
	now := time.Now()
	sort.SliceStable(potential, func(i, j int) bool { return moreImportant(potential[i], potential[j], now) })
	violating, nonViolating := splitByPDB(potential, pdbs)
	var victims []*corev1.Pod
	reprieve := func(p *corev1.Pod) bool {
		add(p)
		if st, _ := s.filterNode(ctx, cy, state, ni); st.IsSuccess() {
			return true
		}
		remove(p)
		victims = append(victims, p)
		return false
	}
	violations := 0
	for _, p := range violating {
		if !reprieve(p) {
			violations++
		}
	}
	for _, p := range nonViolating {
		reprieve(p)
	}
	if len(violating) > 0 && len(nonViolating) > 0 {
		sort.SliceStable(victims, func(i, j int) bool { return moreImportant(victims[i], victims[j], now) })
	}
	return victims, violations, true
}

// moreImportant orders pods by priority, then by start time (earlier is
// more important), as upstream's MoreImportantPod.
func moreImportant(a, b *corev1.Pod, now time.Time) bool {
	pa, pb := podPriority(a), podPriority(b)
	if pa != pb {
		return pa > pb
	}
	return startTime(a, now).Before(startTime(b, now))
}

// startTime is status.startTime; a pod not started yet counts as started
// now, as upstream.
func startTime(p *corev1.Pod, now time.Time) time.Time {
	if p.Status.StartTime != nil {
		return p.Status.StartTime.Time
	}
	return now
}

// splitByPDB splits pods into those whose eviction would take a matching
// PodDisruptionBudget below its allowed disruptions (counting the earlier
// pods of the list against the budget) and the rest, keeping the order.
func splitByPDB(pods []*corev1.Pod, pdbs []*policyv1.PodDisruptionBudget) (violating, nonViolating []*corev1.Pod) {
	allowed := make([]int32, len(pdbs))
	selectors := make([]labels.Selector, len(pdbs))
	for i, pdb := range pdbs {
		allowed[i] = pdb.Status.DisruptionsAllowed
		if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err == nil {
			selectors[i] = sel
		}
	}
	for _, p := range pods {
		violates := false
		for i, pdb := range pdbs {
			sel := selectors[i]
			// A nil or empty selector matches nothing; a pod without
			// labels matches no PDB.
			if len(p.Labels) == 0 || pdb.Namespace != p.Namespace || sel == nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			if _, disrupted := pdb.Status.DisruptedPods[p.Name]; disrupted {
				continue // already counted by the disruption controller
			}
			allowed[i]--
			if allowed[i] < 0 {
				violates = true
			}
		}
		if violates {
			violating = append(violating, p)
		} else {
			nonViolating = append(nonViolating, p)
		}
	}
	return violating, nonViolating
}

// pickCandidate chooses among candidates as upstream's
// pickOneNodeForPreemption: a node without victims at once; else the
// fewest PDB violations, then the lowest highest-victim priority, the
// smallest sum of victim priorities, the fewest victims, the latest start
// of the most important victims, and finally the first.
func pickCandidate(cands []candidate, now time.Time) *candidate {
	if len(cands) == 0 {
		return nil
	}
	for i := range cands {
		if len(cands[i].victims) == 0 {
			return &cands[i]
		}
	}
	idx := make([]int, len(cands))
	for i := range idx {
		idx[i] = i
	}
	// keepMax keeps the candidates with the highest score.
	keepMax := func(score func(c *candidate) int64) {
		best := int64(math.MinInt64)
		var kept []int
		for _, i := range idx {
			switch v := score(&cands[i]); {
			case v > best:
				best, kept = v, []int{i}
			case v == best:
				kept = append(kept, i)
			}
		}
		idx = kept
	}
	for _, score := range []func(c *candidate) int64{
		func(c *candidate) int64 { return -int64(c.pdbViolations) },
		func(c *candidate) int64 { return -int64(podPriority(c.victims[0])) },
		func(c *candidate) int64 {
			var sum int64
			for _, v := range c.victims {
				// Shifted so that negative priorities still add up.
				sum += int64(podPriority(v)) + math.MaxInt32 + 1
			}
			return -sum
		},
		func(c *candidate) int64 { return -int64(len(c.victims)) },
		func(c *candidate) int64 { return earliestStart(c.victims, now).UnixNano() },
	} {
		keepMax(score)
		if len(idx) == 1 {
			break
		}
	}
	return &cands[idx[0]]
}

// earliestStart is the earliest start time among the highest-priority
// victims.
func earliestStart(victims []*corev1.Pod, now time.Time) time.Time {
	top := podPriority(victims[0])
	earliest := startTime(victims[0], now)
	for _, v := range victims[1:] {
		if podPriority(v) > top {
			top, earliest = podPriority(v), startTime(v, now)
		} else if podPriority(v) == top && startTime(v, now).Before(earliest) {
			earliest = startTime(v, now)
		}
	}
	return earliest
}

// preempt runs the dry run for a pod that fits nowhere and, when a node
// would do, nominates the pod there in the cache and returns the node,
// its victims and the lower-priority pods whose nomination to it was
// dropped. The caller holds the cache lock.
func (s *Scheduler) preempt(ctx context.Context, cy *cycle) *preemption {
	if cy.preFilterFailed || !s.eligibleToPreempt(cy) {
		return nil
	}
	var pdbs []*policyv1.PodDisruptionBudget
	if s.pdbs != nil {
		pdbs, _ = s.pdbs.List(labels.Everything())
	}
	best := pickCandidate(s.findCandidates(ctx, cy, pdbs), time.Now())
	if best == nil {
		return nil
	}
	c := s.cache
	lower := c.lowerNominated(cy.pod, best.node)
	for _, p := range lower {
		c.unnominateLocked(key(p))
	}
	c.nominate(cy.pod, best.node)
	c.preempting[key(cy.pod)] = true
	return &preemption{candidate: *best, lower: lower}
}

// preemption is what a cycle decided to preempt.
type preemption struct {
	candidate
	lower []*corev1.Pod // lower-priority pods no longer nominated to the node
}

// executePreemption makes the API calls of a preemption in the
// background: it clears the dropped nominations, then marks each victim
// with a DisruptionTarget condition, deletes it (with its own grace
// period) and records a Preempted event. On failure the preemptor is
// queued again.
func (s *Scheduler) executePreemption(ctx context.Context, pod *corev1.Pod, pr *preemption, e entry) {
	go func() {
		failed := false
		for _, p := range pr.lower {
			if p.Status.NominatedNodeName == "" {
				continue
			}
			if err := s.patchNomination(ctx, p, ""); err != nil {
				s.log.Warn("clear nomination", "pod", key(p), "err", err)
			}
			s.queue.Add(entryFor(p))
		}
		for _, v := range pr.victims {
			if v.DeletionTimestamp != nil {
				continue // already being deleted
			}
			if err := s.preemptVictim(ctx, pod, v, pr.node); err != nil {
				s.log.Warn("preempt", "victim", key(v), "preemptor", key(pod), "err", err)
				failed = true
			}
		}
		s.cache.mu.Lock()
		delete(s.cache.preempting, key(pod))
		s.cache.mu.Unlock()
		if failed {
			s.queue.Add(e)
		}
	}()
}

func (s *Scheduler) preemptVictim(ctx context.Context, preemptor, victim *corev1.Pod, node string) error {
	pods := s.cfg.Client.CoreV1().Pods(victim.Namespace)
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []any{map[string]any{
		"type": corev1.DisruptionTarget, "status": corev1.ConditionTrue, "reason": corev1.PodReasonPreemptionByScheduler,
		"message": preemptor.Spec.SchedulerName + preemptionMessage, "lastTransitionTime": metav1.Now(),
	}}}})
	if _, err := pods.Patch(ctx, victim.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	uid := victim.UID
	if err := pods.Delete(ctx, victim.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone, or a new pod by that name
		}
		return err
	}
	s.recorder.Eventf(victim, corev1.EventTypeNormal, "Preempted", "Preempted by pod %v on node %v", preemptor.UID, node)
	return nil
}

// patchNomination sets (or, with "", clears) status.nominatedNodeName.
func (s *Scheduler) patchNomination(ctx context.Context, pod *corev1.Pod, node string) error {
	var v any
	if node != "" {
		v = node
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"nominatedNodeName": v}})
	_, err := s.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
