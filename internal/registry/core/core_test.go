package core

import (
	"context"
	"net"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

func TestResourcesAreConsistent(t *testing.T) {
	_, cidr, _ := net.ParseCIDR("10.43.0.0/16")
	res, err := Resources(Options{ServiceCIDR: cidr, NodePortBase: 30000, NodePortSize: 2768})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[schema.GroupVersionResource]bool{}
	for _, r := range res {
		if seen[r.GroupVersionResource] {
			t.Errorf("%s listed twice", r.GroupVersionResource)
		}
		seen[r.GroupVersionResource] = true
		gvks, _, err := scheme.Scheme.ObjectKinds(r.New())
		if err != nil || gvks[0].Kind != r.Kind {
			t.Errorf("%s: New() is not a %s: %v %v", r.Resource, r.Kind, gvks, err)
		}
		if _, _, err := scheme.Scheme.ObjectKinds(r.NewList()); err != nil {
			t.Errorf("%s: NewList() unknown: %v", r.Resource, err)
		}
		if r.Strategy == nil {
			t.Errorf("%s has no strategy", r.Resource)
		}
	}
	if _, err := Resources(Options{}); err == nil {
		t.Error("options without a service CIDR accepted")
	}
}

func TestPodGracefulDelete(t *testing.T) {
	grace := func(v int64) *int64 { return &v }
	tests := []struct {
		name      string
		node      string
		phase     corev1.PodPhase
		opts      *metav1.DeleteOptions
		keep      bool
		wantGrace int64
	}{
		{"unbound goes at once", "", corev1.PodPending, nil, false, 0},
		{"bound waits for its node", "n1", corev1.PodRunning, nil, true, 30},
		{"bound with grace 0 goes at once", "n1", corev1.PodRunning, &metav1.DeleteOptions{GracePeriodSeconds: grace(0)}, false, 0},
		{"bound with explicit grace", "n1", corev1.PodRunning, &metav1.DeleteOptions{GracePeriodSeconds: grace(5)}, true, 5},
		{"finished pod goes at once", "n1", corev1.PodSucceeded, nil, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: corev1.PodSpec{NodeName: tt.node, TerminationGracePeriodSeconds: grace(30)}, Status: corev1.PodStatus{Phase: tt.phase}}
			keep := podGracefulDelete(context.Background(), p, tt.opts)
			if keep != tt.keep {
				t.Fatalf("keep = %v, want %v", keep, tt.keep)
			}
			if keep && (p.DeletionTimestamp == nil || *p.DeletionGracePeriodSeconds != tt.wantGrace) {
				t.Fatalf("deletion fields: %v %v", p.DeletionTimestamp, p.DeletionGracePeriodSeconds)
			}
		})
	}
}

func TestQOSClass(t *testing.T) {
	rl := func(cpu, mem string) corev1.ResourceList {
		out := corev1.ResourceList{}
		if cpu != "" {
			out[corev1.ResourceCPU] = mustQuantity(cpu)
		}
		if mem != "" {
			out[corev1.ResourceMemory] = mustQuantity(mem)
		}
		return out
	}
	tests := []struct {
		name string
		req  corev1.ResourceList
		lim  corev1.ResourceList
		want corev1.PodQOSClass
	}{
		{"nothing", nil, nil, corev1.PodQOSBestEffort},
		{"equal requests and limits", rl("1", "1Gi"), rl("1", "1Gi"), corev1.PodQOSGuaranteed},
		{"requests only", rl("100m", ""), nil, corev1.PodQOSBurstable},
		{"limits above requests", rl("100m", "1Gi"), rl("1", "1Gi"), corev1.PodQOSBurstable},
	}
	for _, tt := range tests {
		spec := &corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: tt.req, Limits: tt.lim}}}}
		if got := QOSClass(spec); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func mustQuantity(s string) apiresource.Quantity { return apiresource.MustParse(s) }

func TestNamespaceCreateAddsFinalizerAndNameLabel(t *testing.T) {
	r := namespaces()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{corev1.LabelMetadataName: "spoofed"}},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"example.com/other"}}}
	r.Strategy.PrepareForCreate(context.Background(), ns)
	if ns.Labels[corev1.LabelMetadataName] != "team-a" {
		t.Fatalf("label %q, want the namespace name", ns.Labels[corev1.LabelMetadataName])
	}
	if len(ns.Spec.Finalizers) != 2 || ns.Spec.Finalizers[1] != corev1.FinalizerKubernetes {
		t.Fatalf("finalizers %v, want the kubernetes finalizer added to the others", ns.Spec.Finalizers)
	}
	upd := ns.DeepCopy()
	delete(upd.Labels, corev1.LabelMetadataName)
	r.Strategy.PrepareForUpdate(context.Background(), upd, ns)
	if upd.Labels[corev1.LabelMetadataName] != "team-a" {
		t.Fatal("the name label cannot be removed by an update")
	}
}

func TestValidateServicePortsAndExternalName(t *testing.T) {
	port := func(name string, p, node int32, proto corev1.Protocol) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: p, NodePort: node, Protocol: proto}
	}
	tests := []struct {
		name    string
		svc     corev1.Service
		wantErr string
	}{
		{"ok tcp and udp on one port", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{port("a", 53, 0, corev1.ProtocolTCP), port("b", 53, 0, corev1.ProtocolUDP)}}}, ""},
		{"duplicate port/protocol", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{port("a", 80, 0, corev1.ProtocolTCP), port("b", 80, 0, corev1.ProtocolTCP)}}}, "spec.ports[1]: Duplicate value"},
		{"duplicate nodePort", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{port("a", 80, 30080, corev1.ProtocolTCP), port("b", 81, 30080, corev1.ProtocolTCP)}}}, "spec.ports[1].nodePort: Duplicate value"},
		{"externalName with clusterIP", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com",
			ClusterIP: "10.43.0.9", SessionAffinity: corev1.ServiceAffinityNone}}, "spec.clusterIPs: Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := validateService(&tt.svc)
			got := errs.ToAggregate()
			switch {
			case tt.wantErr == "" && got != nil:
				t.Fatalf("unexpected errors: %v", got)
			case tt.wantErr != "" && (got == nil || !strings.Contains(got.Error(), tt.wantErr)):
				t.Fatalf("errors %v, want %q", got, tt.wantErr)
			}
		})
	}
}
