package nodeipam

import (
	"errors"
	"fmt"
	"math/big"
	"net"
)

// ErrFull means every range of the cluster CIDR is taken.
var ErrFull = errors.New("no remaining CIDRs in the cluster CIDR")

// Allocator hands out fixed-size subnets of a cluster CIDR.
type Allocator struct {
	base     *net.IPNet
	maskSize int
	count    int
	used     []bool
	next     int
}

// NewAllocator splits cidr into /maskSize ranges.
func NewAllocator(cidr *net.IPNet, maskSize int) (*Allocator, error) {
	ones, bits := cidr.Mask.Size()
	if maskSize < ones || maskSize > bits {
		return nil, fmt.Errorf("node CIDR mask size %d does not fit in %s", maskSize, cidr)
	}
	if maskSize-ones > 20 {
		return nil, fmt.Errorf("node CIDR mask size %d splits %s into too many ranges", maskSize, cidr)
	}
	n := 1 << (maskSize - ones)
	return &Allocator{base: cidr, maskSize: maskSize, count: n, used: make([]bool, n)}, nil
}

func (a *Allocator) subnet(i int) *net.IPNet {
	_, bits := a.base.Mask.Size()
	ip := new(big.Int).SetBytes(a.base.IP.To16())
	if a.base.IP.To4() != nil {
		ip = new(big.Int).SetBytes(a.base.IP.To4())
	}
	ip.Add(ip, new(big.Int).Lsh(big.NewInt(int64(i)), uint(bits-a.maskSize)))
	b := ip.Bytes()
	size := bits / 8
	out := make(net.IP, size)
	copy(out[size-len(b):], b)
	return &net.IPNet{IP: out, Mask: net.CIDRMask(a.maskSize, bits)}
}

// index returns the range index of a subnet, or -1 if it is not one of ours.
func (a *Allocator) index(n *net.IPNet) int {
	ones, bits := n.Mask.Size()
	_, bbits := a.base.Mask.Size()
	if ones != a.maskSize || bits != bbits || !a.base.Contains(n.IP) {
		return -1
	}
	off := new(big.Int).Sub(new(big.Int).SetBytes(ipBytes(n.IP, bits)), new(big.Int).SetBytes(ipBytes(a.base.IP, bits)))
	off.Rsh(off, uint(bits-a.maskSize))
	i := int(off.Int64())
	if i < 0 || i >= a.count {
		return -1
	}
	return i
}

func ipBytes(ip net.IP, bits int) []byte {
	if bits == 32 {
		return ip.To4()
	}
	return ip.To16()
}

// Allocate returns a free range.
func (a *Allocator) Allocate() (*net.IPNet, error) {
	for k := 0; k < a.count; k++ {
		i := (a.next + k) % a.count
		if !a.used[i] {
			a.used[i] = true
			a.next = (i + 1) % a.count
			return a.subnet(i), nil
		}
	}
	return nil, ErrFull
}

// Occupy marks a range taken; it reports false when the range is not
// one of this allocator's.
func (a *Allocator) Occupy(n *net.IPNet) bool {
	i := a.index(n)
	if i < 0 {
		return false
	}
	a.used[i] = true
	return true
}

// Release frees a range.
func (a *Allocator) Release(n *net.IPNet) {
	if i := a.index(n); i >= 0 {
		a.used[i] = false
	}
}
