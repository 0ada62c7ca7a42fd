// Package interpodaffinity applies pod affinity and anti-affinity, as
// kube-scheduler's InterPodAffinity plugin: a pod's required terms and
// existing pods' required anti-affinity terms filter, preferred terms (of
// both, and existing pods' required affinity at HardPodAffinityWeight)
// score. Counts by topology domain are computed once per cycle over the
// whole snapshot in PreFilter/PreScore; Filter and Score only look them up.
package interpodaffinity

import (
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "InterPodAffinity"

// Upstream's reason texts.
const (
	ErrReasonAffinityRulesNotMatch             = "node(s) didn't match pod affinity rules"
	ErrReasonAntiAffinityRulesNotMatch         = "node(s) didn't match pod anti-affinity rules"
	ErrReasonExistingAntiAffinityRulesNotMatch = "node(s) didn't satisfy existing pods anti-affinity rules"
)

// InterPodAffinity is the plugin. HardPodAffinityWeight is the score an
// existing pod's required affinity term adds to the domains where the
// incoming pod would satisfy it (upstream's default is 1; 0 disables).
type InterPodAffinity struct {
	HardPodAffinityWeight int32
}

// New returns the plugin with upstream's defaults.
func New() InterPodAffinity { return InterPodAffinity{HardPodAffinityWeight: 1} }

func (InterPodAffinity) Name() string { return Name }

// topologyPair is one topology domain, e.g. zone=a.
type topologyPair struct{ key, value string }

// resolveNamespaces turns the namespaceSelector of the incoming pod's terms
// into namespace names once per cycle, as upstream does, so matching
// existing pods needs no namespace look-up. Without a namespace lister the
// selector stays and is matched against no labels (only {} matches).
func resolveNamespaces(snap *framework.Snapshot, pi *framework.PodInfo) {
	if snap.Listers.Namespaces == nil {
		return
	}
	for i := range pi.RequiredAffinityTerms {
		resolveTerm(snap, &pi.RequiredAffinityTerms[i])
	}
	for i := range pi.RequiredAntiAffinityTerms {
		resolveTerm(snap, &pi.RequiredAntiAffinityTerms[i])
	}
	for i := range pi.PreferredAffinityTerms {
		resolveTerm(snap, &pi.PreferredAffinityTerms[i].AffinityTerm)
	}
	for i := range pi.PreferredAntiAffinityTerms {
		resolveTerm(snap, &pi.PreferredAntiAffinityTerms[i].AffinityTerm)
	}
}

func resolveTerm(snap *framework.Snapshot, t *framework.AffinityTerm) {
	if _, selectable := t.NamespaceSelector.Requirements(); !selectable {
		return // matches nothing: nothing to list
	}
	nss, err := snap.Listers.Namespaces.List(t.NamespaceSelector)
	if err != nil {
		return
	}
	names := make(map[string]bool, len(t.Namespaces)+len(nss))
	for ns := range t.Namespaces {
		names[ns] = true
	}
	for _, ns := range nss {
		names[ns.Name] = true
	}
	t.Namespaces, t.NamespaceSelector = names, labels.Nothing()
	t.Compile()
}

var (
	_ framework.PreFilterPlugin     = InterPodAffinity{}
	_ framework.PreFilterExtensions = InterPodAffinity{}
	_ framework.PreScorePlugin      = InterPodAffinity{}
	_ framework.ScoreNormalizer     = InterPodAffinity{}
)
