package nodeipam

import (
	"errors"
	"net"
	"testing"
)

func TestAllocator(t *testing.T) {
	_, cidr, _ := net.ParseCIDR("10.42.0.0/22")
	a, err := NewAllocator(cidr, 24)
	if err != nil {
		t.Fatal(err)
	}
	_, taken, _ := net.ParseCIDR("10.42.1.0/24")
	if !a.Occupy(taken) {
		t.Fatal("10.42.1.0/24 is in range")
	}
	_, foreign, _ := net.ParseCIDR("10.99.0.0/24")
	if a.Occupy(foreign) {
		t.Fatal("a foreign range must not be occupied")
	}
	var got []string
	for i := 0; i < 3; i++ {
		n, err := a.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n.String())
	}
	want := []string{"10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocation %d = %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := a.Allocate(); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	a.Release(taken)
	n, err := a.Allocate()
	if err != nil || n.String() != "10.42.1.0/24" {
		t.Fatalf("after release got %v, %v", n, err)
	}
	if _, err := NewAllocator(cidr, 16); err == nil {
		t.Fatal("a mask wider than the cluster CIDR must be rejected")
	}
}
