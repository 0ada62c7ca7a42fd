package core

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// serviceAllocator hands out Service cluster IPs from the service CIDR and
// node ports from the node port range, never the same one twice.
type serviceAllocator struct {
	mu       sync.Mutex
	cidr     *net.IPNet
	first    uint32 // network address as a number
	size     int    // usable addresses: network and broadcast excluded
	ips      map[uint32]bool
	nextIP   int
	portBase int
	portSize int
	ports    map[string]bool // "TCP/30080"
	nextPort int
}

var _ registry.Allocator = (*serviceAllocator)(nil)

func newServiceAllocator(cidr *net.IPNet, portBase, portSize int) *serviceAllocator {
	ones, bits := cidr.Mask.Size()
	return &serviceAllocator{
		cidr:     cidr,
		first:    binary.BigEndian.Uint32(cidr.IP.To4()),
		size:     (1 << (bits - ones)) - 2,
		ips:      map[uint32]bool{},
		portBase: portBase,
		portSize: portSize,
		ports:    map[string]bool{},
	}
}

func (a *serviceAllocator) ipOffset(s string) (uint32, bool) {
	ip := net.ParseIP(s).To4()
	if ip == nil || !a.cidr.Contains(ip) {
		return 0, false
	}
	off := binary.BigEndian.Uint32(ip) - a.first
	if off == 0 || int(off) > a.size {
		return 0, false
	}
	return off, true
}

func (a *serviceAllocator) ipString(off uint32) string {
	b := make(net.IP, 4)
	binary.BigEndian.PutUint32(b, a.first+off)
	return b.String()
}

func portKey(proto corev1.Protocol, port int32) string { return fmt.Sprintf("%s/%d", proto, port) }

func (a *serviceAllocator) Restore(objs []runtime.Object) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, o := range objs {
		svc := o.(*corev1.Service)
		if off, ok := a.ipOffset(svc.Spec.ClusterIP); ok {
			a.ips[off] = true
		}
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 {
				a.ports[portKey(p.Protocol, p.NodePort)] = true
			}
		}
	}
}

func (a *serviceAllocator) Allocate(_ context.Context, obj, old runtime.Object) (func(), field.ErrorList) {
	svc := obj.(*corev1.Service)
	var oldSvc *corev1.Service
	if old != nil {
		oldSvc = old.(*corev1.Service)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var newIPs []uint32
	var newPorts []string
	release := func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, ip := range newIPs {
			delete(a.ips, ip)
		}
		for _, p := range newPorts {
			delete(a.ports, p)
		}
	}
	undo := func() {
		for _, ip := range newIPs {
			delete(a.ips, ip)
		}
		for _, p := range newPorts {
			delete(a.ports, p)
		}
	}
	spec := field.NewPath("spec")
	oldIP := ""
	if oldSvc != nil && oldSvc.Spec.Type != corev1.ServiceTypeExternalName {
		oldIP = oldSvc.Spec.ClusterIP
	}

	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
	case svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP == oldIP:
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	case svc.Spec.ClusterIP != "":
		off, ok := a.ipOffset(svc.Spec.ClusterIP)
		if !ok {
			return nil, field.ErrorList{field.Invalid(spec.Child("clusterIPs").Index(0), svc.Spec.ClusterIP,
				fmt.Sprintf("failed to allocate IP %s: provided IP is not in the valid range. The range of valid IPs is %s", svc.Spec.ClusterIP, a.cidr))}
		}
		if a.ips[off] {
			return nil, field.ErrorList{field.Invalid(spec.Child("clusterIPs").Index(0), svc.Spec.ClusterIP,
				fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", svc.Spec.ClusterIP))}
		}
		a.ips[off] = true
		newIPs = append(newIPs, off)
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	default:
		off, ok := a.nextFreeIP()
		if !ok {
			return nil, field.ErrorList{field.InternalError(spec.Child("clusterIPs").Index(0), fmt.Errorf("failed to allocate a serviceIP: range is full"))}
		}
		a.ips[off] = true
		newIPs = append(newIPs, off)
		svc.Spec.ClusterIP = a.ipString(off)
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}

	oldPorts := map[string]bool{}
	if oldSvc != nil {
		for _, p := range oldSvc.Spec.Ports {
			if p.NodePort != 0 {
				oldPorts[portKey(p.Protocol, p.NodePort)] = true
			}
		}
	}
	keptPorts := map[string]bool{}
	if needsNodePorts(svc) {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			path := spec.Child("ports").Index(i).Child("nodePort")
			if p.NodePort != 0 {
				k := portKey(p.Protocol, p.NodePort)
				if oldPorts[k] || keptPorts[k] {
					keptPorts[k] = true
					continue
				}
				if int(p.NodePort) < a.portBase || int(p.NodePort) >= a.portBase+a.portSize {
					undo()
					return nil, field.ErrorList{field.Invalid(path, p.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.portBase, a.portBase+a.portSize-1))}
				}
				if a.ports[k] {
					undo()
					return nil, field.ErrorList{field.Invalid(path, p.NodePort, "provided port is already allocated")}
				}
				a.ports[k] = true
				keptPorts[k] = true
				newPorts = append(newPorts, k)
				continue
			}
			port, ok := a.nextFreePort(p.Protocol)
			if !ok {
				undo()
				return nil, field.ErrorList{field.InternalError(path, fmt.Errorf("failed to allocate a nodePort: range is full"))}
			}
			k := portKey(p.Protocol, port)
			a.ports[k] = true
			keptPorts[k] = true
			newPorts = append(newPorts, k)
			p.NodePort = port
		}
	}
	// Values the update no longer uses go back to the pools.
	if oldSvc != nil {
		if oldIP != "" && oldIP != svc.Spec.ClusterIP {
			if off, ok := a.ipOffset(oldIP); ok {
				delete(a.ips, off)
			}
		}
		for k := range oldPorts {
			if !keptPorts[k] {
				delete(a.ports, k)
			}
		}
	}
	return release, nil
}

func (a *serviceAllocator) nextFreeIP() (uint32, bool) {
	for i := 0; i < a.size; i++ {
		off := uint32((a.nextIP+i)%a.size) + 1
		// The first address belongs to the kubernetes Service and is only
		// handed out when asked for by value.
		if off == 1 || a.ips[off] {
			continue
		}
		a.nextIP = int(off)
		return off, true
	}
	return 0, false
}

func (a *serviceAllocator) nextFreePort(proto corev1.Protocol) (int32, bool) {
	for i := 0; i < a.portSize; i++ {
		port := int32(a.portBase + (a.nextPort+i)%a.portSize)
		if !a.ports[portKey(proto, port)] {
			a.nextPort = (a.nextPort + i + 1) % a.portSize
			return port, true
		}
	}
	return 0, false
}

func (a *serviceAllocator) Release(obj runtime.Object) {
	svc := obj.(*corev1.Service)
	a.mu.Lock()
	defer a.mu.Unlock()
	if off, ok := a.ipOffset(svc.Spec.ClusterIP); ok && svc.Spec.Type != corev1.ServiceTypeExternalName {
		delete(a.ips, off)
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			delete(a.ports, portKey(p.Protocol, p.NodePort))
		}
	}
}
