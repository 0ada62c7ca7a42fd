package core

import (
	"context"
	"net"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func svc(name, ip string, typ corev1.ServiceType, nodePort int32) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Type: typ, ClusterIP: ip, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, NodePort: nodePort}}}}
}

func newTestAllocator(cidr string) *serviceAllocator {
	_, n, _ := net.ParseCIDR(cidr)
	return newServiceAllocator(n, 30000, 5)
}

func TestAllocatorClusterIPs(t *testing.T) {
	a := newTestAllocator("10.0.0.0/29") // 6 usable, .1 reserved for kubernetes
	got := map[string]bool{}
	for i := 0; i < 5; i++ {
		s := svc("s", "", corev1.ServiceTypeClusterIP, 0)
		if _, errs := a.Allocate(context.Background(), s, nil); len(errs) > 0 {
			t.Fatalf("allocation %d: %v", i, errs)
		}
		if s.Spec.ClusterIP == "10.0.0.1" || s.Spec.ClusterIP == "10.0.0.0" || s.Spec.ClusterIP == "10.0.0.7" || got[s.Spec.ClusterIP] {
			t.Fatalf("allocated %s (taken before: %v)", s.Spec.ClusterIP, got)
		}
		if len(s.Spec.ClusterIPs) != 1 || s.Spec.ClusterIPs[0] != s.Spec.ClusterIP {
			t.Fatalf("clusterIPs %v", s.Spec.ClusterIPs)
		}
		got[s.Spec.ClusterIP] = true
	}
	if _, errs := a.Allocate(context.Background(), svc("full", "", corev1.ServiceTypeClusterIP, 0), nil); len(errs) == 0 {
		t.Fatal("allocated from a full range")
	}
	// The reserved first address is given when asked for by value.
	if _, errs := a.Allocate(context.Background(), svc("k", "10.0.0.1", corev1.ServiceTypeClusterIP, 0), nil); len(errs) > 0 {
		t.Fatalf("explicit first address: %v", errs)
	}
	if _, errs := a.Allocate(context.Background(), svc("dup", "10.0.0.1", corev1.ServiceTypeClusterIP, 0), nil); len(errs) == 0 || errs[0].Type != "FieldValueInvalid" {
		t.Fatalf("duplicate explicit address: %v", errs)
	}
	if _, errs := a.Allocate(context.Background(), svc("out", "192.168.0.1", corev1.ServiceTypeClusterIP, 0), nil); len(errs) == 0 {
		t.Fatal("address outside the range accepted")
	}
	headless := svc("h", corev1.ClusterIPNone, corev1.ServiceTypeClusterIP, 0)
	if _, errs := a.Allocate(context.Background(), headless, nil); len(errs) > 0 || headless.Spec.ClusterIPs[0] != "None" {
		t.Fatalf("headless: %v %v", errs, headless.Spec.ClusterIPs)
	}
}

func TestAllocatorReleaseRestoreAndRollback(t *testing.T) {
	a := newTestAllocator("10.0.0.0/29")
	s := svc("s", "10.0.0.3", corev1.ServiceTypeNodePort, 30002)
	release, errs := a.Allocate(context.Background(), s, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	release() // the write failed: both values are free again
	if _, errs := a.Allocate(context.Background(), svc("again", "10.0.0.3", corev1.ServiceTypeNodePort, 30002), nil); len(errs) > 0 {
		t.Fatalf("values not freed by release: %v", errs)
	}
	b := newTestAllocator("10.0.0.0/29")
	b.Restore([]runtime.Object{svc("again", "10.0.0.3", corev1.ServiceTypeNodePort, 30002)})
	if _, errs := b.Allocate(context.Background(), svc("x", "10.0.0.3", corev1.ServiceTypeClusterIP, 0), nil); len(errs) == 0 {
		t.Fatal("restored clusterIP handed out again")
	}
	if _, errs := b.Allocate(context.Background(), svc("y", "", corev1.ServiceTypeNodePort, 30002), nil); len(errs) == 0 {
		t.Fatal("restored nodePort handed out again")
	}
	b.Release(svc("again", "10.0.0.3", corev1.ServiceTypeNodePort, 30002))
	if _, errs := b.Allocate(context.Background(), svc("z", "10.0.0.3", corev1.ServiceTypeNodePort, 30002), nil); len(errs) > 0 {
		t.Fatalf("released values not reusable: %v", errs)
	}
}

func TestAllocatorNodePorts(t *testing.T) {
	a := newTestAllocator("10.0.0.0/24")
	if _, errs := a.Allocate(context.Background(), svc("bad", "", corev1.ServiceTypeNodePort, 40000), nil); len(errs) == 0 {
		t.Fatal("nodePort outside the range accepted")
	}
	ports := map[int32]bool{}
	for i := 0; i < 5; i++ {
		s := svc("np", "", corev1.ServiceTypeNodePort, 0)
		if _, errs := a.Allocate(context.Background(), s, nil); len(errs) > 0 {
			t.Fatalf("allocation %d: %v", i, errs)
		}
		p := s.Spec.Ports[0].NodePort
		if p < 30000 || p >= 30005 || ports[p] {
			t.Fatalf("nodePort %d (taken: %v)", p, ports)
		}
		ports[p] = true
	}
	if _, errs := a.Allocate(context.Background(), svc("full", "", corev1.ServiceTypeNodePort, 0), nil); len(errs) == 0 {
		t.Fatal("nodePort from a full range")
	}
	// An update that keeps its values allocates nothing new.
	old := svc("k", "", corev1.ServiceTypeClusterIP, 0)
	a.Allocate(context.Background(), old, nil)
	upd := old.DeepCopy()
	if _, errs := a.Allocate(context.Background(), upd, old); len(errs) > 0 || upd.Spec.ClusterIP != old.Spec.ClusterIP {
		t.Fatalf("update kept values: %v %s", errs, upd.Spec.ClusterIP)
	}
}

func TestAllocatorConcurrent(t *testing.T) {
	a := newTestAllocator("10.1.0.0/22")
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				s := svc("c", "", corev1.ServiceTypeClusterIP, 0)
				if _, errs := a.Allocate(context.Background(), s, nil); len(errs) > 0 {
					t.Error(errs)
					return
				}
				mu.Lock()
				if seen[s.Spec.ClusterIP] {
					t.Errorf("%s handed out twice", s.Spec.ClusterIP)
				}
				seen[s.Spec.ClusterIP] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
