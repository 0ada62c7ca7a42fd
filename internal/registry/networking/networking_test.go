package networking

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func ptr[T any](v T) *T { return &v }

func TestValidateSpec(t *testing.T) {
	tcp, icmp := corev1.ProtocolTCP, corev1.Protocol("ICMP")
	port := func(p intstr.IntOrString, end *int32) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &p, EndPort: end}
	}
	for _, tc := range []struct {
		name string
		spec networkingv1.NetworkPolicySpec
		want []string // "field: substring"
	}{
		{name: "empty selector, default deny", spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Ingress", "Egress"}}},
		{name: "valid rules", spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{port(intstr.FromInt32(80), ptr(int32(90))), port(intstr.FromString("http"), nil)},
				From: []networkingv1.NetworkPolicyPeer{
					{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/16", Except: []string{"10.0.1.0/24"}}},
				},
			}},
		}},
		{name: "bad selector", spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"a b": "c"}}},
			want: []string{"spec.podSelector.matchLabels: Invalid value: \"a b\": name part must consist"}},
		{name: "endPort below port", spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			Ports: []networkingv1.NetworkPolicyPort{port(intstr.FromInt32(90), ptr(int32(80)))}}}},
			want: []string{"spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`"}},
		{name: "endPort with named port", spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{
			Ports: []networkingv1.NetworkPolicyPort{port(intstr.FromString("http"), ptr(int32(80)))}}}},
			want: []string{"spec.egress[0].ports[0].endPort: Invalid value: 80: may not be specified when `port` is non-numeric"}},
		{name: "endPort without port", spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{
			Ports: []networkingv1.NetworkPolicyPort{{EndPort: ptr(int32(80))}}}}},
			want: []string{"spec.egress[0].ports[0].port: Required"}},
		{name: "port out of range and bad protocol", spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &icmp, Port: ptr(intstr.FromInt32(70000))}}}}},
			want: []string{"spec.ingress[0].ports[0].protocol: Unsupported value", "spec.ingress[0].ports[0].port: Invalid value: 70000"}},
		{name: "empty peer", spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{}}}}},
			want: []string{"spec.ingress[0].from[0]: Required value: must specify a peer"}},
		{name: "ipBlock and selector", spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}, IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}}}}},
			want: []string{"spec.ingress[0].from[0]: Forbidden: may not specify more than 1 peer"}},
		{name: "bad cidr", spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.300/8"}}}}}},
			want: []string{"spec.egress[0].to[0].ipBlock.cidr: Invalid value"}},
		{name: "except outside cidr", spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/16", Except: []string{"10.1.0.0/24", "10.0.0.0/16", "x"}}}}}}},
			want: []string{"except[0]: Invalid value: \"10.1.0.0/24\": must be a strict subset of `cidr`",
				"except[1]: Invalid value: \"10.0.0.0/16\": must be a strict subset", "except[2]: Invalid value: \"x\": must be a valid CIDR"}},
		{name: "policy types", spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Ingress", "Egress", "Both"}},
			want: []string{"spec.policyTypes: Invalid value", "spec.policyTypes[2]: Unsupported value: \"Both\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateSpec(&tc.spec, field.NewPath("spec"))
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d %v", len(errs), errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d: %q does not contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

func TestDefaultAndTable(t *testing.T) {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: metav1.NewTime(time.Unix(1000, 0))},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{}}}}}}
	Default(np)
	if got := np.Spec.PolicyTypes; len(got) != 2 || got[0] != "Ingress" || got[1] != "Egress" {
		t.Errorf("policyTypes %v", got)
	}
	if p := np.Spec.Egress[0].Ports[0].Protocol; p == nil || *p != corev1.ProtocolTCP {
		t.Errorf("protocol %v", p)
	}
	tbl := &policyTable{now: func() time.Time { return time.Unix(1000+3600, 0) }}
	cells, _ := tbl.Cells(np)
	if cells[0] != "p" || cells[1] != "app=web" || cells[2] != "60m" {
		t.Errorf("cells %v", cells)
	}
	np.Spec.PodSelector = metav1.LabelSelector{}
	if cells, _ = tbl.Cells(np); cells[1] != "<none>" {
		t.Errorf("empty selector cell %v", cells[1])
	}
	if n := len(tbl.ColumnDefinitions()); n != 3 {
		t.Errorf("%d columns", n)
	}
}
