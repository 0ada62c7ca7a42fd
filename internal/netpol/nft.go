package netpol

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/knftables"
)

// applier keeps the table in step with a desired State. The first apply
// (and any after a failure) rebuilds the whole table in one transaction;
// later ones add and delete set elements and rewrite a chain only when its
// rules changed.
type applier struct {
	nft     knftables.Interface
	applied *State // what the table holds; nil: unknown, rebuild
}

// Stats says what one apply changed.
type Stats struct {
	Full            bool
	Elements        int // elements added or deleted
	ChainsRewritten int
	Operations      int
}

func (a *applier) apply(ctx context.Context, want *State) (Stats, error) {
	tx := a.nft.NewTransaction()
	var st Stats
	if a.applied == nil {
		st = fullTx(tx, want)
	} else {
		st = diffTx(tx, a.applied, want)
	}
	st.Operations = tx.NumOperations()
	if st.Operations == 0 {
		return st, nil
	}
	if err := a.nft.Run(ctx, tx); err != nil {
		a.applied = nil
		return st, fmt.Errorf("nftables: %w", err)
	}
	a.applied = want
	return st, nil
}

func fullTx(tx *knftables.Transaction, want *State) Stats {
	// add+delete+add clears whatever an earlier run left, atomically.
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("skiff NetworkPolicy enforcement")})
	tx.Add(&knftables.Chain{Name: forwardChain, Type: knftables.PtrTo(knftables.FilterType),
		Hook: knftables.PtrTo(knftables.ForwardHook), Priority: knftables.PtrTo(knftables.FilterPriority)})
	tx.Add(&knftables.Chain{Name: ingressChain})
	tx.Add(&knftables.Chain{Name: egressChain})
	for _, name := range sortedKeys(want.Sets) {
		s := want.Sets[name]
		tx.Add(&knftables.Set{Name: name, Type: s.Type})
		addElements(tx, name, sets.List(s.Elements))
	}
	for _, r := range []string{
		"ct state established,related accept",
		"ip saddr . ip daddr @" + selfSet + " accept",
		"ip daddr @" + ingressIsolated + " jump " + ingressChain,
		"ip saddr @" + egressIsolated + " jump " + egressChain,
	} {
		tx.Add(&knftables.Rule{Chain: forwardChain, Rule: r})
	}
	addRules(tx, ingressChain, want.Ingress)
	addRules(tx, egressChain, want.Egress)
	n := 0
	for _, s := range want.Sets {
		n += s.Elements.Len()
	}
	return Stats{Full: true, Elements: n, ChainsRewritten: 3}
}

func diffTx(tx *knftables.Transaction, have, want *State) Stats {
	var st Stats
	for _, name := range sortedKeys(want.Sets) {
		if _, ok := have.Sets[name]; !ok {
			tx.Add(&knftables.Set{Name: name, Type: want.Sets[name].Type})
		}
	}
	removedSets := false
	for name := range have.Sets {
		if _, ok := want.Sets[name]; !ok {
			removedSets = true
		}
	}
	for _, c := range []struct {
		name       string
		have, want []Rule
	}{{ingressChain, have.Ingress, want.Ingress}, {egressChain, have.Egress, want.Egress}} {
		if removedSets || !slices.Equal(c.have, c.want) {
			tx.Flush(&knftables.Chain{Name: c.name})
			addRules(tx, c.name, c.want)
			st.ChainsRewritten++
		}
	}
	for _, name := range sortedKeys(have.Sets) {
		if _, ok := want.Sets[name]; !ok {
			tx.Delete(&knftables.Set{Name: name})
		}
	}
	for _, name := range sortedKeys(want.Sets) {
		w := want.Sets[name]
		h := sets.New[string]()
		if hs, ok := have.Sets[name]; ok {
			h = hs.Elements
		}
		add, del := sets.List(w.Elements.Difference(h)), sets.List(h.Difference(w.Elements))
		addElements(tx, name, add)
		for _, e := range del {
			tx.Delete(&knftables.Element{Set: name, Key: splitKey(e)})
		}
		st.Elements += len(add) + len(del)
	}
	return st
}

func addRules(tx *knftables.Transaction, chain string, rules []Rule) {
	for _, r := range rules {
		tx.Add(&knftables.Rule{Chain: chain, Rule: r.Rule, Comment: knftables.PtrTo(r.Comment)})
	}
	tx.Add(&knftables.Rule{Chain: chain, Rule: "drop"})
}

func addElements(tx *knftables.Transaction, set string, elems []string) {
	for _, e := range elems {
		tx.Add(&knftables.Element{Set: set, Key: splitKey(e)})
	}
}

// splitKey turns "a . b . c" into knftables' concatenation key.
func splitKey(e string) []string { return strings.Split(e, " . ") }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
