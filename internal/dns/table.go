package dns

import (
	"sort"
	"sync"

	"github.com/miekg/dns"
)

// rrsByType are the records of one name. A name present with no records is
// an empty non-terminal or a Service without addresses: NODATA, not NXDOMAIN.
type rrsByType map[uint16][]dns.RR

// records is what one source (a Service, or the static zone records)
// contributes: lower-case FQDN → records.
type records map[string]rrsByType

func (r records) add(name string, rr dns.RR) {
	n := r.touch(name)
	t := rr.Header().Rrtype
	n[t] = append(n[t], rr)
}

// touch makes name exist, with or without records.
func (r records) touch(name string) rrsByType {
	n, ok := r[name]
	if !ok {
		n = rrsByType{}
		r[name] = n
	}
	return n
}

// table is the name → records map queries read. Several sources may
// contribute to one name (a namespace's `<ns>.svc.<zone>`, the PTR of an IP
// that two headless Services share), so each name is the merge of its
// sources' contributions, rebuilt only when one of them changes. Published
// rrsByType values are never mutated: readers hold them without a lock.
type table struct {
	mu    sync.RWMutex
	names map[string]rrsByType

	wmu     sync.Mutex                     // serialises set
	sources map[string]records             // source → its contribution
	owners  map[string]map[string]struct{} // name → sources with records at it
	// empties counts the sources that make a name exist without records
	// (`<ns>.svc.<zone>` for every Service of the namespace): a count, not an
	// owner set, so that the thousandth Service of a namespace costs no more
	// than the first.
	empties map[string]int
}

// noRecords is the published value of a name that exists without records.
var noRecords = rrsByType{}

func newTable() *table {
	return &table{
		names:   map[string]rrsByType{},
		sources: map[string]records{},
		owners:  map[string]map[string]struct{}{},
		empties: map[string]int{},
	}
}

func (t *table) lookup(name string) (rrsByType, bool) {
	t.mu.RLock()
	n, ok := t.names[name]
	t.mu.RUnlock()
	return n, ok
}

// set replaces what source contributes (nil or empty removes it) and
// rebuilds the names it touched, before or now.
func (t *table) set(source string, recs records) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	old := t.sources[source]
	if len(recs) == 0 {
		delete(t.sources, source)
	} else {
		t.sources[source] = recs
	}
	affected := make(map[string]struct{}, len(old)+len(recs))
	for name, rrs := range old {
		affected[name] = struct{}{}
		if len(rrs) == 0 {
			if t.empties[name]--; t.empties[name] <= 0 {
				delete(t.empties, name)
			}
			continue
		}
		if o := t.owners[name]; o != nil {
			delete(o, source)
			if len(o) == 0 {
				delete(t.owners, name)
			}
		}
	}
	for name, rrs := range recs {
		affected[name] = struct{}{}
		if len(rrs) == 0 {
			t.empties[name]++
			continue
		}
		o := t.owners[name]
		if o == nil {
			o = map[string]struct{}{}
			t.owners[name] = o
		}
		o[source] = struct{}{}
	}
	updates := make(map[string]rrsByType, len(affected))
	for name := range affected {
		updates[name] = t.merge(name) // nil: the name is gone
	}
	t.mu.Lock()
	for name, n := range updates {
		if n == nil {
			delete(t.names, name)
		} else {
			t.names[name] = n
		}
	}
	t.mu.Unlock()
}

// merge builds name's records from its owners, in a stable order.
func (t *table) merge(name string) rrsByType {
	o := t.owners[name]
	if len(o) == 0 {
		if t.empties[name] > 0 {
			return noRecords
		}
		return nil
	}
	if len(o) == 1 {
		for src := range o {
			return t.sources[src][name]
		}
	}
	srcs := make([]string, 0, len(o))
	for src := range o {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	n := rrsByType{}
	for _, src := range srcs {
		for typ, rrs := range t.sources[src][name] {
			n[typ] = append(n[typ], rrs...)
		}
	}
	return n
}

// size is the number of names served, for logs and tests.
func (t *table) size() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.names)
}
