package endpoints

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/endpointutil"
)

// desiredSubsets computes a Service's subsets from the pods its selector
// matches (before truncation).
func desiredSubsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	p := newPacker()
	publish := svc.Spec.PublishNotReadyAddresses
	for _, pod := range pods {
		if !endpointutil.ShouldPodBeInEndpoints(pod, publish) {
			continue
		}
		addr, ok := addressFor(svc, pod)
		if !ok {
			continue // no IP of the Service's family
		}
		ready := publish || controller.IsPodReady(pod)
		if len(svc.Spec.Ports) == 0 {
			// Only headless Services may have no ports; their
			// endpoints carry addresses alone.
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				p.add(addr, nil, ready)
			}
			continue
		}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			num, err := endpointutil.FindPort(pod, sp)
			if err != nil {
				continue // this pod lacks the named port
			}
			p.add(addr, &corev1.EndpointPort{Name: sp.Name, Port: num, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol}, ready)
		}
	}
	return p.subsets()
}

// addressFor builds a pod's address for svc, choosing the pod IP of the
// Service's (primary) IP family.
func addressFor(svc *corev1.Service, pod *corev1.Pod) (corev1.EndpointAddress, bool) {
	ips := endpointutil.PodIPs(pod)
	if len(ips) == 0 {
		return corev1.EndpointAddress{}, false
	}
	var v6 bool
	switch {
	case len(svc.Spec.IPFamilies) > 0:
		v6 = svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	case endpointutil.IsServiceIPSet(svc):
		v6 = endpointutil.IsIPv6(svc.Spec.ClusterIP)
	default:
		v6 = endpointutil.IsIPv6(ips[0])
	}
	for _, ip := range ips {
		if endpointutil.IsIPv6(ip) != v6 {
			continue
		}
		a := corev1.EndpointAddress{IP: ip, TargetRef: &corev1.ObjectReference{
			Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		}}
		if pod.Spec.NodeName != "" {
			n := pod.Spec.NodeName
			a.NodeName = &n
		}
		if endpointutil.ShouldSetHostname(pod, svc) {
			a.Hostname = pod.Spec.Hostname
		}
		return a, true
	}
	return corev1.EndpointAddress{}, false
}
