package framework

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// AffinityTerm is a parsed PodAffinityTerm: a pod matches it when it is in
// one of Namespaces (or its namespace's labels match NamespaceSelector)
// and its labels match Selector.
type AffinityTerm struct {
	Namespaces        map[string]bool
	NamespaceSelector labels.Selector
	Selector          labels.Selector
	TopologyKey       string

	// A compiled form of the common case, set by Compile: one namespace
	// and no namespace selector; a selector of key=value pairs only.
	// Matching runs over every placed pod, so it is worth one map lookup
	// per pair instead of the generic path's three per requirement.
	onlyNS   string
	equals   []labelPair
	compiled bool
}

type labelPair struct{ key, value string }

// Compile prepares the fast matching path; call it after changing the
// term's fields.
func (t *AffinityTerm) Compile() {
	t.onlyNS, t.equals, t.compiled = "", nil, false
	if _, selectable := t.NamespaceSelector.Requirements(); selectable || len(t.Namespaces) != 1 {
		return
	}
	eq, ok := equalsOnly(t.Selector)
	if !ok {
		return
	}
	for ns := range t.Namespaces {
		t.onlyNS = ns
	}
	t.equals, t.compiled = eq, true
}

// Matches reports whether pod, whose namespace carries nsLabels, matches
// the term.
func (t *AffinityTerm) Matches(pod *corev1.Pod, nsLabels labels.Set) bool {
	if t.compiled {
		if pod.Namespace != t.onlyNS {
			return false
		}
		for _, p := range t.equals {
			if v, ok := pod.Labels[p.key]; !ok || v != p.value {
				return false
			}
		}
		return true
	}
	if t.Namespaces[pod.Namespace] || t.NamespaceSelector.Matches(nsLabels) {
		return t.Selector.Matches(labels.Set(pod.Labels))
	}
	return false
}

// WeightedAffinityTerm is a preferred term with its weight.
type WeightedAffinityTerm struct {
	AffinityTerm
	Weight int32
}

// PodInfo is a pod with its pod (anti-)affinity terms parsed once, so the
// cycles that look at it as an existing pod do not parse them again.
// Terms that fail to parse are dropped (validation rejects them anyway).
type PodInfo struct {
	Pod                        *corev1.Pod
	RequiredAffinityTerms      []AffinityTerm
	RequiredAntiAffinityTerms  []AffinityTerm
	PreferredAffinityTerms     []WeightedAffinityTerm
	PreferredAntiAffinityTerms []WeightedAffinityTerm
}

// HasPodAffinity reports whether a pod has any pod affinity or
// anti-affinity term.
func HasPodAffinity(p *corev1.Pod) bool {
	a := p.Spec.Affinity
	return a != nil && (a.PodAffinity != nil || a.PodAntiAffinity != nil)
}

// NewPodInfo parses pod's affinity terms.
func NewPodInfo(pod *corev1.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod}
	a := pod.Spec.Affinity
	if a == nil {
		return pi
	}
	if pa := a.PodAffinity; pa != nil {
		pi.RequiredAffinityTerms = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution)
		pi.PreferredAffinityTerms = parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	if pa := a.PodAntiAffinity; pa != nil {
		pi.RequiredAntiAffinityTerms = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution)
		pi.PreferredAntiAffinityTerms = parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	return pi
}

func parseTerms(pod *corev1.Pod, terms []corev1.PodAffinityTerm) []AffinityTerm {
	var out []AffinityTerm
	for i := range terms {
		if t, ok := parseTerm(pod, &terms[i]); ok {
			out = append(out, t)
		}
	}
	return out
}

func parseWeighted(pod *corev1.Pod, terms []corev1.WeightedPodAffinityTerm) []WeightedAffinityTerm {
	var out []WeightedAffinityTerm
	for i := range terms {
		if t, ok := parseTerm(pod, &terms[i].PodAffinityTerm); ok {
			out = append(out, WeightedAffinityTerm{AffinityTerm: t, Weight: terms[i].Weight})
		}
	}
	return out
}

// parseTerm applies upstream's reading of a term: no namespaces and no
// namespaceSelector means the pod's own namespace; an empty
// namespaceSelector means every namespace; matchLabelKeys and
// mismatchLabelKeys add "key in/notin (the pod's value)" to the selector
// (the API server may already have merged them; adding them twice is
// harmless).
func parseTerm(pod *corev1.Pod, term *corev1.PodAffinityTerm) (AffinityTerm, bool) {
	t := AffinityTerm{TopologyKey: term.TopologyKey, Namespaces: map[string]bool{}, NamespaceSelector: labels.Nothing()}
	if len(term.Namespaces) == 0 && term.NamespaceSelector == nil {
		t.Namespaces[pod.Namespace] = true
	}
	for _, ns := range term.Namespaces {
		t.Namespaces[ns] = true
	}
	if term.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(term.NamespaceSelector)
		if err != nil {
			return t, false
		}
		t.NamespaceSelector = sel
	}
	sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	if err != nil {
		return t, false
	}
	sel, ok := withLabelKeys(sel, pod, term.MatchLabelKeys, selection.In)
	if !ok {
		return t, false
	}
	if sel, ok = withLabelKeys(sel, pod, term.MismatchLabelKeys, selection.NotIn); !ok {
		return t, false
	}
	t.Selector = sel
	t.Compile()
	return t, true
}

// LabelMatcher is a label selector with a fast path for the common
// key=value-only form, for matching against every placed pod.
type LabelMatcher struct {
	sel    labels.Selector
	equals []labelPair
	fast   bool
}

// NewLabelMatcher compiles sel.
func NewLabelMatcher(sel labels.Selector) LabelMatcher {
	m := LabelMatcher{sel: sel}
	m.equals, m.fast = equalsOnly(sel)
	return m
}

// Matches reports whether the labels match.
func (m *LabelMatcher) Matches(ls map[string]string) bool {
	if !m.fast {
		return m.sel.Matches(labels.Set(ls))
	}
	for _, p := range m.equals {
		if v, ok := ls[p.key]; !ok || v != p.value {
			return false
		}
	}
	return true
}

// equalsOnly returns sel's requirements as key=value pairs, if that is
// all it has.
func equalsOnly(sel labels.Selector) ([]labelPair, bool) {
	reqs, selectable := sel.Requirements()
	if !selectable {
		return nil, false
	}
	var eq []labelPair
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if r.Values().Len() != 1 {
				return nil, false
			}
			eq = append(eq, labelPair{r.Key(), r.Values().UnsortedList()[0]})
		default:
			return nil, false
		}
	}
	return eq, true
}

// WithMatchLabelKeys narrows sel to pods that share pod's values for keys
// (keys the pod lacks are ignored), as matchLabelKeys do.
func WithMatchLabelKeys(sel labels.Selector, pod *corev1.Pod, keys []string) labels.Selector {
	out, ok := withLabelKeys(sel, pod, keys, selection.In)
	if !ok {
		return labels.Nothing()
	}
	return out
}

func withLabelKeys(sel labels.Selector, pod *corev1.Pod, keys []string, op selection.Operator) (labels.Selector, bool) {
	if len(keys) == 0 {
		return sel, true
	}
	for _, k := range keys {
		v, ok := pod.Labels[k]
		if !ok {
			continue
		}
		r, err := labels.NewRequirement(k, op, []string{v})
		if err != nil {
			return sel, false
		}
		sel = sel.Add(*r)
	}
	return sel, true
}
