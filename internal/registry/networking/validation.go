package networking

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry/validation"
)

var (
	protocols   = []string{string(corev1.ProtocolSCTP), string(corev1.ProtocolTCP), string(corev1.ProtocolUDP)}
	policyTypes = []string{string(networkingv1.PolicyTypeEgress), string(networkingv1.PolicyTypeIngress)}
)

// ValidateSpec checks a NetworkPolicySpec as upstream's validation does,
// with its messages.
func ValidateSpec(spec *networkingv1.NetworkPolicySpec, path *field.Path) field.ErrorList {
	errs := validation.ValidateLabelSelector(&spec.PodSelector, path.Child("podSelector"))
	for i, r := range spec.Ingress {
		p := path.Child("ingress").Index(i)
		for j := range r.Ports {
			errs = append(errs, validatePort(&r.Ports[j], p.Child("ports").Index(j))...)
		}
		for j := range r.From {
			errs = append(errs, validatePeer(&r.From[j], p.Child("from").Index(j))...)
		}
	}
	for i, r := range spec.Egress {
		p := path.Child("egress").Index(i)
		for j := range r.Ports {
			errs = append(errs, validatePort(&r.Ports[j], p.Child("ports").Index(j))...)
		}
		for j := range r.To {
			errs = append(errs, validatePeer(&r.To[j], p.Child("to").Index(j))...)
		}
	}
	allowed := sets.New(policyTypes...)
	if len(spec.PolicyTypes) > len(policyTypes) {
		errs = append(errs, field.Invalid(path.Child("policyTypes"), spec.PolicyTypes, "may not specify more than two policyTypes"))
	}
	for i, t := range spec.PolicyTypes {
		if !allowed.Has(string(t)) {
			errs = append(errs, field.NotSupported(path.Child("policyTypes").Index(i), t, policyTypes))
		}
	}
	return errs
}

func validatePort(port *networkingv1.NetworkPolicyPort, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Protocol != nil && !sets.New(protocols...).Has(string(*port.Protocol)) {
		errs = append(errs, field.NotSupported(p.Child("protocol"), *port.Protocol, protocols))
	}
	if port.Port == nil {
		if port.EndPort != nil {
			errs = append(errs, field.Required(p.Child("port"), "must be specified when endPort is specified"))
		}
		return errs
	}
	if port.Port.Type == intstr.Int {
		for _, msg := range utilvalidation.IsValidPortNum(int(port.Port.IntVal)) {
			errs = append(errs, field.Invalid(p.Child("port"), port.Port.IntVal, msg))
		}
		if port.EndPort != nil {
			if *port.EndPort < port.Port.IntVal {
				errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "must be greater than or equal to `port`"))
			}
			for _, msg := range utilvalidation.IsValidPortNum(int(*port.EndPort)) {
				errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, msg))
			}
		}
		return errs
	}
	if port.EndPort != nil {
		errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "may not be specified when `port` is non-numeric"))
	}
	for _, msg := range utilvalidation.IsValidPortName(port.Port.StrVal) {
		errs = append(errs, field.Invalid(p.Child("port"), port.Port.StrVal, msg))
	}
	return errs
}

func validatePeer(peer *networkingv1.NetworkPolicyPeer, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if peer.PodSelector != nil || peer.NamespaceSelector != nil {
		n++
	}
	if peer.PodSelector != nil {
		errs = append(errs, validation.ValidateLabelSelector(peer.PodSelector, p.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		errs = append(errs, validation.ValidateLabelSelector(peer.NamespaceSelector, p.Child("namespaceSelector"))...)
	}
	if peer.IPBlock != nil {
		n++
		errs = append(errs, validateIPBlock(peer.IPBlock, p.Child("ipBlock"))...)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(p, "must specify a peer"))
	case n > 1:
		errs = append(errs, field.Forbidden(p, "may not specify more than 1 peer"))
	}
	return errs
}

func validateIPBlock(b *networkingv1.IPBlock, p *field.Path) field.ErrorList {
	if b.CIDR == "" {
		return field.ErrorList{field.Required(p.Child("cidr"), "")}
	}
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return field.ErrorList{field.Invalid(p.Child("cidr"), b.CIDR, fmt.Sprintf("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64): %v", err))}
	}
	var errs field.ErrorList
	for i, e := range b.Except {
		ep := p.Child("except").Index(i)
		ex, err := netip.ParsePrefix(e)
		if err != nil {
			errs = append(errs, field.Invalid(ep, e, fmt.Sprintf("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64): %v", err)))
			continue
		}
		if ex.Addr().Is4() != cidr.Addr().Is4() || ex.Bits() <= cidr.Bits() || !cidr.Contains(ex.Addr()) {
			errs = append(errs, field.Invalid(ep, e, "must be a strict subset of `cidr`"))
		}
	}
	return errs
}
