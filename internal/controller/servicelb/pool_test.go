package servicelb

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPool(t *testing.T) {
	type step struct {
		op      string // allocate, release, occupy
		key     string
		ip      string // for occupy; the expected address for allocate
		wantErr error
		wantOK  bool // occupy and release
	}
	tests := []struct {
		name  string
		cidr  string
		steps []step
	}{{
		name: "lowest free address, skipping network and broadcast",
		cidr: "192.0.2.0/30",
		steps: []step{
			{op: "allocate", key: "a", ip: "192.0.2.1"},
			{op: "allocate", key: "a", ip: "192.0.2.1"}, // idempotent
			{op: "allocate", key: "b", ip: "192.0.2.2"},
			{op: "allocate", key: "c", wantErr: ErrPoolExhausted},
			{op: "release", key: "a", wantOK: true},
			{op: "release", key: "a", wantOK: false},
			{op: "allocate", key: "c", ip: "192.0.2.1"},
		},
	}, {
		name: "a /32 has its one address",
		cidr: "192.0.2.7/32",
		steps: []step{
			{op: "allocate", key: "a", ip: "192.0.2.7"},
			{op: "allocate", key: "b", wantErr: ErrPoolExhausted},
		},
	}, {
		name: "a /31 uses both addresses",
		cidr: "192.0.2.8/31",
		steps: []step{
			{op: "allocate", key: "a", ip: "192.0.2.8"},
			{op: "allocate", key: "b", ip: "192.0.2.9"},
		},
	}, {
		name: "occupy after a restart",
		cidr: "10.10.0.0/24",
		steps: []step{
			{op: "occupy", key: "a", ip: "10.10.0.5", wantOK: true},
			{op: "occupy", key: "a", ip: "10.10.0.5", wantOK: true},
			{op: "occupy", key: "b", ip: "10.10.0.5", wantOK: false},   // taken
			{op: "occupy", key: "a", ip: "10.10.0.6", wantOK: false},   // a holds another
			{op: "occupy", key: "c", ip: "10.11.0.1", wantOK: false},   // outside
			{op: "occupy", key: "c", ip: "10.10.0.255", wantOK: false}, // broadcast
			{op: "allocate", key: "b", ip: "10.10.0.1"},
			{op: "allocate", key: "a", ip: "10.10.0.5"},
		},
	}, {
		name: "unmasked CIDR and IPv6",
		cidr: "2001:db8::5/126",
		steps: []step{
			{op: "allocate", key: "a", ip: "2001:db8::4"},
			{op: "allocate", key: "b", ip: "2001:db8::5"},
			{op: "allocate", key: "c", ip: "2001:db8::6"},
			{op: "allocate", key: "d", ip: "2001:db8::7"},
			{op: "allocate", key: "e", wantErr: ErrPoolExhausted},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPool(tt.cidr)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				switch s.op {
				case "allocate":
					a, err := p.Allocate(s.key)
					if !errors.Is(err, s.wantErr) {
						t.Fatalf("step %d: allocate %s: err %v, want %v", i, s.key, err, s.wantErr)
					}
					if s.wantErr == nil && a.String() != s.ip {
						t.Fatalf("step %d: allocate %s = %s, want %s", i, s.key, a, s.ip)
					}
				case "release":
					if ok := p.Release(s.key); ok != s.wantOK {
						t.Fatalf("step %d: release %s = %v", i, s.key, ok)
					}
				case "occupy":
					if ok := p.Occupy(s.key, netip.MustParseAddr(s.ip)); ok != s.wantOK {
						t.Fatalf("step %d: occupy %s %s = %v", i, s.key, s.ip, ok)
					}
				}
			}
		})
	}
	if _, err := NewPool("10.0.0.0"); err == nil {
		t.Error("NewPool of a bare address: no error")
	}
}
