// Package discovery describes discovery.k8s.io/v1 endpointslices. No I/O.
package discovery

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns discovery.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	s := &registry.BaseStrategy{
		DefaultFunc: func(o runtime.Object) {
			es := o.(*discoveryv1.EndpointSlice)
			for i := range es.Ports {
				if es.Ports[i].Protocol == nil {
					p := corev1.ProtocolTCP
					es.Ports[i].Protocol = &p
				}
			}
		},
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			return validate(o.(*discoveryv1.EndpointSlice), nil)
		},
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			return validate(o.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice))
		},
	}
	return []*registry.Resource{{
		GroupVersionResource: discoveryv1.SchemeGroupVersion.WithResource("endpointslices"),
		Kind:                 "EndpointSlice", SingularName: "endpointslice", Namespaced: true, Strategy: s,
		New: func() runtime.Object { return &discoveryv1.EndpointSlice{} }, NewList: func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
	}}
}

const maxEndpoints = 1000

func validate(es, old *discoveryv1.EndpointSlice) field.ErrorList {
	var errs field.ErrorList
	switch es.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	case "":
		errs = append(errs, field.Required(field.NewPath("addressType"), ""))
	default:
		errs = append(errs, field.NotSupported(field.NewPath("addressType"), es.AddressType, []string{"IPv4", "IPv6", "FQDN"}))
	}
	if old != nil && old.AddressType != es.AddressType {
		errs = append(errs, field.Invalid(field.NewPath("addressType"), es.AddressType, "field is immutable"))
	}
	if len(es.Endpoints) > maxEndpoints {
		errs = append(errs, field.TooMany(field.NewPath("endpoints"), len(es.Endpoints), maxEndpoints))
	}
	for i, ep := range es.Endpoints {
		if len(ep.Addresses) == 0 {
			errs = append(errs, field.Required(field.NewPath("endpoints").Index(i).Child("addresses"), "must contain at least 1 address"))
		}
	}
	return errs
}
