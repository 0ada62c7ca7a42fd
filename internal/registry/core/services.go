package core

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/defaults"
)

func services(opts Options) *registry.Resource {
	s := &registry.BaseStrategy{
		HasStatus:   true,
		DefaultFunc: func(obj runtime.Object) { defaults.Service(obj.(*corev1.Service)) },
		PrepareForUpdateFunc: func(_ context.Context, obj, old runtime.Object) {
			keepAllocated(obj.(*corev1.Service), old.(*corev1.Service))
		},
		ValidateFunc: func(_ context.Context, obj runtime.Object) field.ErrorList {
			return validateService(obj.(*corev1.Service))
		},
		ValidateUpdateFunc: func(_ context.Context, obj, old runtime.Object) field.ErrorList {
			svc, o := obj.(*corev1.Service), old.(*corev1.Service)
			errs := validateService(svc)
			if o.Spec.ClusterIP != "" && svc.Spec.ClusterIP != o.Spec.ClusterIP &&
				svc.Spec.Type != corev1.ServiceTypeExternalName && o.Spec.Type != corev1.ServiceTypeExternalName {
				errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), svc.Spec.ClusterIPs, "may not change once set"))
			}
			return errs
		},
	}
	r := resource("services", "Service", true, func() runtime.Object { return &corev1.Service{} },
		func() runtime.Object { return &corev1.ServiceList{} }, s)
	r.ShortNames = []string{"svc"}
	r.Categories = []string{"all"}
	r.ValidateName = apivalidation.NameIsDNS1035Label
	r.Subresources = map[string]*registry.Subresource{"status": statusSub(s)}
	r.Allocator = newServiceAllocator(opts.ServiceCIDR, opts.NodePortBase, opts.NodePortSize)
	return r
}

// keepAllocated carries allocated values an update left empty over from
// the stored object, as upstream does, so a PUT without clusterIP or
// nodePort keeps them.
func keepAllocated(svc, old *corev1.Service) {
	if svc.Spec.Type != corev1.ServiceTypeExternalName && old.Spec.Type != corev1.ServiceTypeExternalName {
		if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) == 0 {
			svc.Spec.ClusterIP = old.Spec.ClusterIP
			svc.Spec.ClusterIPs = append([]string(nil), old.Spec.ClusterIPs...)
		}
	}
	if needsNodePorts(svc) && needsNodePorts(old) {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.NodePort != 0 {
				continue
			}
			for _, op := range old.Spec.Ports {
				if op.Port == p.Port && op.Protocol == p.Protocol && op.NodePort != 0 {
					p.NodePort = op.NodePort
				}
			}
		}
	}
	if svc.Spec.HealthCheckNodePort == 0 {
		svc.Spec.HealthCheckNodePort = old.Spec.HealthCheckNodePort
	}
}

func needsNodePorts(svc *corev1.Service) bool {
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		return svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}

var serviceTypes = sets.New(string(corev1.ServiceTypeClusterIP), string(corev1.ServiceTypeNodePort),
	string(corev1.ServiceTypeLoadBalancer), string(corev1.ServiceTypeExternalName))

func validateService(svc *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if !serviceTypes.Has(string(svc.Spec.Type)) {
		errs = append(errs, field.NotSupported(spec.Child("type"), svc.Spec.Type, sets.List(serviceTypes)))
	}
	headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
	external := svc.Spec.Type == corev1.ServiceTypeExternalName
	if external {
		if svc.Spec.ClusterIP != "" || len(svc.Spec.ClusterIPs) > 0 {
			errs = append(errs, field.Forbidden(spec.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if svc.Spec.ExternalName == "" {
			errs = append(errs, field.Required(spec.Child("externalName"), ""))
		} else {
			for _, msg := range utilvalidation.IsDNS1123Subdomain(svc.Spec.ExternalName) {
				errs = append(errs, field.Invalid(spec.Child("externalName"), svc.Spec.ExternalName, msg))
			}
		}
	}
	if len(svc.Spec.Ports) == 0 && !headless && !external {
		errs = append(errs, field.Required(spec.Child("ports"), ""))
	}
	if headless && (svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer) {
		errs = append(errs, field.Invalid(spec.Child("clusterIPs").Index(0), svc.Spec.ClusterIP, fmt.Sprintf("may not be set to 'None' for %s services", svc.Spec.Type)))
	}
	names := sets.New[string]()
	portKeys := sets.New[string]()
	nodePorts := sets.New[string]()
	protocols := sets.New(string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP))
	for i, p := range svc.Spec.Ports {
		pp := spec.Child("ports").Index(i)
		if len(svc.Spec.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		}
		if p.Name != "" {
			for _, msg := range utilvalidation.IsDNS1123Label(p.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				errs = append(errs, field.Duplicate(pp.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		for _, msg := range utilvalidation.IsValidPortNum(int(p.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), p.Port, msg))
		}
		if !protocols.Has(string(p.Protocol)) {
			errs = append(errs, field.NotSupported(pp.Child("protocol"), p.Protocol, sets.List(protocols)))
		}
		if p.TargetPort.IntVal != 0 || p.TargetPort.StrVal != "" {
			if p.TargetPort.StrVal != "" {
				for _, msg := range utilvalidation.IsValidPortName(p.TargetPort.StrVal) {
					errs = append(errs, field.Invalid(pp.Child("targetPort"), p.TargetPort.StrVal, msg))
				}
			} else {
				for _, msg := range utilvalidation.IsValidPortNum(int(p.TargetPort.IntVal)) {
					errs = append(errs, field.Invalid(pp.Child("targetPort"), p.TargetPort.IntVal, msg))
				}
			}
		}
		if key := fmt.Sprintf("%d/%s", p.Port, p.Protocol); portKeys.Has(key) {
			errs = append(errs, field.Duplicate(pp, key))
		} else {
			portKeys.Insert(key)
		}
		if p.NodePort != 0 {
			if key := fmt.Sprintf("%d/%s", p.NodePort, p.Protocol); nodePorts.Has(key) {
				errs = append(errs, field.Duplicate(pp.Child("nodePort"), p.NodePort))
			} else {
				nodePorts.Insert(key)
			}
		}
		if p.NodePort != 0 && !needsNodePorts(svc) {
			errs = append(errs, field.Forbidden(pp.Child("nodePort"), fmt.Sprintf("may not be used when `type` is '%s'", svc.Spec.Type)))
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(svc.Spec.Selector, spec.Child("selector"))...)
	if svc.Spec.SessionAffinity != corev1.ServiceAffinityNone && svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		errs = append(errs, field.NotSupported(spec.Child("sessionAffinity"), svc.Spec.SessionAffinity, []string{"ClientIP", "None"}))
	}
	return errs
}
