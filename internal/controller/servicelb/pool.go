package servicelb

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrPoolExhausted is returned by Allocate when every address is taken.
var ErrPoolExhausted = errors.New("address pool exhausted")

// Pool hands out the addresses of one CIDR, one per owner key. For IPv4
// prefixes shorter than /31 the network and broadcast addresses are never
// handed out. It is not safe for concurrent use.
type Pool struct {
	prefix      netip.Prefix
	first, last netip.Addr
	byAddr      map[netip.Addr]string
	byKey       map[string]netip.Addr
}

// NewPool returns an empty pool over cidr.
func NewPool(cidr string) (*Pool, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("pool %q: %w", cidr, err)
	}
	p = p.Masked()
	first, last := p.Addr(), lastAddr(p)
	if p.Addr().Is4() && p.Bits() < 31 {
		first, last = first.Next(), last.Prev()
	}
	return &Pool{prefix: p, first: first, last: last, byAddr: map[netip.Addr]string{}, byKey: map[string]netip.Addr{}}, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		bit := i * 8
		switch {
		case bit >= p.Bits():
			b[i] = 0xff
		case bit+8 > p.Bits():
			b[i] |= byte(0xff >> (p.Bits() - bit))
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Contains reports whether ip is one of the pool's addresses.
func (p *Pool) Contains(ip netip.Addr) bool {
	return p.prefix.Contains(ip) && ip.Compare(p.first) >= 0 && ip.Compare(p.last) <= 0
}

// Get is key's address, if it holds one.
func (p *Pool) Get(key string) (netip.Addr, bool) {
	a, ok := p.byKey[key]
	return a, ok
}

// Occupy records that key holds ip (an address it had before a restart).
// It fails if ip is outside the pool, taken by another key, or key holds a
// different address.
func (p *Pool) Occupy(key string, ip netip.Addr) bool {
	if !p.Contains(ip) {
		return false
	}
	if owner, ok := p.byAddr[ip]; ok {
		return owner == key
	}
	if _, ok := p.byKey[key]; ok {
		return false
	}
	p.byAddr[ip], p.byKey[key] = key, ip
	return true
}

// Allocate returns key's address, taking the lowest free one if it holds
// none.
func (p *Pool) Allocate(key string) (netip.Addr, error) {
	if a, ok := p.byKey[key]; ok {
		return a, nil
	}
	for a := p.first; a.IsValid() && a.Compare(p.last) <= 0; a = a.Next() {
		if _, taken := p.byAddr[a]; !taken {
			p.byAddr[a], p.byKey[key] = key, a
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: all %d addresses of %s are in use", ErrPoolExhausted, len(p.byAddr), p.prefix)
}

// Release frees key's address; it reports whether key held one.
func (p *Pool) Release(key string) bool {
	a, ok := p.byKey[key]
	if ok {
		delete(p.byKey, key)
		delete(p.byAddr, a)
	}
	return ok
}

// Used is the number of addresses handed out.
func (p *Pool) Used() int { return len(p.byKey) }
