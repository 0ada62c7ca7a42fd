package proxy

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// svcBuilder builds Services for tests: makeSvc("web").ip("10.96.0.10").port(80).obj().
type svcBuilder struct{ s *corev1.Service }

func makeSvc(name string) *svcBuilder {
	return &svcBuilder{&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}}
}

func (b *svcBuilder) ip(ip string) *svcBuilder { b.s.Spec.ClusterIP = ip; return b }
func (b *svcBuilder) port(p int32) *svcBuilder {
	b.s.Spec.Ports = append(b.s.Spec.Ports, corev1.ServicePort{Name: "http", Port: p, Protocol: corev1.ProtocolTCP})
	return b
}
func (b *svcBuilder) nodePort(np int32) *svcBuilder {
	b.s.Spec.Type = corev1.ServiceTypeNodePort
	b.s.Spec.Ports[len(b.s.Spec.Ports)-1].NodePort = np
	return b
}
func (b *svcBuilder) lb(ips ...string) *svcBuilder {
	b.s.Spec.Type = corev1.ServiceTypeLoadBalancer
	for _, ip := range ips {
		b.s.Status.LoadBalancer.Ingress = append(b.s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return b
}
func (b *svcBuilder) affinity(secs int32) *svcBuilder {
	b.s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	b.s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &secs}}
	return b
}
func (b *svcBuilder) externalLocal() *svcBuilder {
	b.s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	return b
}
func (b *svcBuilder) internalLocal() *svcBuilder {
	l := corev1.ServiceInternalTrafficPolicyLocal
	b.s.Spec.InternalTrafficPolicy = &l
	return b
}
func (b *svcBuilder) obj() *corev1.Service { return b.s }

// ep is an endpoint for makeSlice.
type ep struct {
	ip                          string
	node                        string
	ready, serving, terminating bool
}

func ready(ip, node string) ep { return ep{ip: ip, node: node, ready: true, serving: true} }

func makeSlice(svc, name string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	pn, proto := "http", corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pn, Port: &port, Protocol: &proto}},
	}
	for _, e := range eps {
		e := e
		node := e.node
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.ip}, NodeName: &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &e.ready, Serving: &e.serving, Terminating: &e.terminating}})
	}
	return s
}
