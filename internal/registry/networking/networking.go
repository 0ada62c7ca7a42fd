package networking

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns networking.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	s := &registry.BaseStrategy{
		DefaultFunc: func(o runtime.Object) { Default(o.(*networkingv1.NetworkPolicy)) },
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			return ValidateSpec(&o.(*networkingv1.NetworkPolicy).Spec, field.NewPath("spec"))
		},
		ValidateUpdateFunc: func(_ context.Context, o, _ runtime.Object) field.ErrorList {
			return ValidateSpec(&o.(*networkingv1.NetworkPolicy).Spec, field.NewPath("spec"))
		},
	}
	return []*registry.Resource{{
		GroupVersionResource: networkingv1.SchemeGroupVersion.WithResource("networkpolicies"),
		Kind:                 "NetworkPolicy", SingularName: "networkpolicy", ShortNames: []string{"netpol"}, Namespaced: true, Strategy: s,
		New:     func() runtime.Object { return &networkingv1.NetworkPolicy{} },
		NewList: func() runtime.Object { return &networkingv1.NetworkPolicyList{} },
		Table:   &policyTable{now: time.Now},
	}}
}

// Default applies upstream's defaults: every port's protocol is TCP unless
// set; absent policyTypes mean Ingress, plus Egress when egress rules exist.
func Default(np *networkingv1.NetworkPolicy) {
	tcp := func(ports []networkingv1.NetworkPolicyPort) {
		for i := range ports {
			if ports[i].Protocol == nil {
				p := corev1.ProtocolTCP
				ports[i].Protocol = &p
			}
		}
	}
	for i := range np.Spec.Ingress {
		tcp(np.Spec.Ingress[i].Ports)
	}
	for i := range np.Spec.Egress {
		tcp(np.Spec.Egress[i].Ports)
	}
	if len(np.Spec.PolicyTypes) == 0 {
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) != 0 {
			np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
}

// policyTable prints kube-apiserver's columns: NAME POD-SELECTOR AGE.
type policyTable struct{ now func() time.Time }

var _ registry.TableConvertor = (*policyTable)(nil)

func (t *policyTable) ColumnDefinitions() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]},
		{Name: "Pod-Selector", Type: "string", Description: networkingv1.NetworkPolicySpec{}.SwaggerDoc()["podSelector"]},
		{Name: "Age", Type: "string", Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]},
	}
}

func (t *policyTable) Cells(obj runtime.Object) ([]interface{}, error) {
	np, ok := obj.(*networkingv1.NetworkPolicy)
	if !ok {
		return []interface{}{"<unknown>", "<unknown>", "<unknown>"}, nil
	}
	age := "<unknown>"
	if ts := np.CreationTimestamp; !ts.IsZero() {
		age = duration.HumanDuration(t.now().Sub(ts.Time))
	}
	return []interface{}{np.Name, metav1.FormatLabelSelector(&np.Spec.PodSelector), age}, nil
}
