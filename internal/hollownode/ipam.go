package hollownode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/types"
)

var errPoolFull = errors.New("no free pod IP")

// ipPool hands out pod IPs from one node's pod CIDR, round-robin from the
// last address given (as the host-local IPAM plugin), so a freed address is
// not reused at once. Not safe for concurrent use; the node's mutex guards it.
type ipPool struct {
	prefix netip.Prefix
	first  netip.Addr // network address + 2 (+1 is the bridge's gateway)
	size   int        // usable addresses from first
	next   int        // offset of the next candidate
	used   map[netip.Addr]types.UID
}

func newIPPool(cidr string) (*ipPool, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("pod cidr %q: %w", cidr, err)
	}
	p = p.Masked()
	if !p.Addr().Is4() || p.Bits() > 29 {
		return nil, fmt.Errorf("pod cidr %q: want an IPv4 prefix of /29 or larger", cidr)
	}
	hostBits := 32 - p.Bits()
	if hostBits > 16 {
		hostBits = 16 // 65k pods a node is plenty
	}
	return &ipPool{
		prefix: p, first: p.Addr().Next().Next(), size: 1<<hostBits - 3, // minus network, gateway, broadcast
		used: map[netip.Addr]types.UID{},
	}, nil
}

func (p *ipPool) at(off int) netip.Addr {
	b := p.first.As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(off)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// allocate gives uid an address no other live pod holds.
func (p *ipPool) allocate(uid types.UID) (netip.Addr, error) {
	for i := 0; i < p.size; i++ {
		off := (p.next + i) % p.size
		a := p.at(off)
		if _, taken := p.used[a]; !taken {
			p.used[a] = uid
			p.next = (off + 1) % p.size
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w in %s", errPoolFull, p.prefix)
}

// reserve marks an address a pod already reports as held by it; it fails
// when the address is outside the pool or another pod holds it.
func (p *ipPool) reserve(a netip.Addr, uid types.UID) bool {
	if !p.prefix.Contains(a) {
		return false
	}
	if owner, taken := p.used[a]; taken {
		return owner == uid
	}
	p.used[a] = uid
	return true
}

func (p *ipPool) release(a netip.Addr, uid types.UID) {
	if p.used[a] == uid {
		delete(p.used, a)
	}
}
