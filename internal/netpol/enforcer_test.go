package netpol

import (
	"context"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/knftables"
)

// TestEnforcerFollowsTheAPI: informer events reach the table.
func TestEnforcerFollowsTheAPI(t *testing.T) {
	cs := fake.NewClientset(namespace("a", nil), pod("a", "web", "n1", "10.0.0.2", lbl("app", "web")))
	nft := knftables.NewFake(knftables.InetFamily, "skf-enf")
	e, err := New(Config{Client: cs, NodeName: "n1", Table: "skf-enf", NFT: nft})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-e.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	isolated := func() int {
		els, _ := nft.ListElements(ctx, "set", ingressIsolated)
		return len(els)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if cond() {
				return
			}
		}
		t.Fatalf("%s: not within 5s:\n%s", what, nft.Dump())
	}
	if isolated() != 0 {
		t.Fatalf("isolated before any policy:\n%s", nft.Dump())
	}
	np := policy("a", "deny", nil, networkingv1.PolicyTypeIngress).obj()
	if _, err := cs.NetworkingV1().NetworkPolicies("a").Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("policy created → pod isolated", func() bool { return isolated() == 1 })
	if err := cs.NetworkingV1().NetworkPolicies("a").Delete(ctx, "deny", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("policy deleted → pod open", func() bool { return isolated() == 0 })
}
