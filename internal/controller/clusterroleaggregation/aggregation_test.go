package clusterroleaggregation

import (
	"context"
	"io"
	"log/slog"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

func role(name string, labels map[string]string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Rules: rules}
}

func TestAggregate(t *testing.T) {
	get := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	list := rbacv1.PolicyRule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	agg := role("agg", map[string]string{"x": "true"})
	agg.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
		{MatchLabels: map[string]string{"x": "true"}}, {MatchLabels: map[string]string{"y": "true"}}}}
	all := []*rbacv1.ClusterRole{agg, role("b", map[string]string{"x": "true"}, list, get), role("a", map[string]string{"y": "true"}, get),
		role("c", map[string]string{"x": "false"}, rbacv1.PolicyRule{Verbs: []string{"*"}})}
	rules, err := Aggregate(agg, all)
	if err != nil {
		t.Fatal(err)
	}
	// a's rule first (name order), each rule once, agg itself and c left out.
	if len(rules) != 2 || rules[0].Verbs[0] != "get" || rules[1].Verbs[0] != "list" {
		t.Fatalf("rules = %+v", rules)
	}
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	agg := role("agg", nil)
	agg.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"x": "true"}}}}
	member := role("m", map[string]string{"x": "true"}, rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}})
	cs := fake.NewClientset(agg, member)
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.queue.ShutDown()
	for _, r := range []*rbacv1.ClusterRole{agg, member} {
		if err := inf.Rbac().V1().ClusterRoles().Informer().GetStore().Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.sync(ctx, "agg"); err != nil {
		t.Fatal(err)
	}
	got, _ := cs.RbacV1().ClusterRoles().Get(ctx, "agg", metav1.GetOptions{})
	if len(got.Rules) != 1 || got.Rules[0].Resources[0] != "pods" {
		t.Fatalf("aggregated rules = %+v", got.Rules)
	}
	// Syncing a role without aggregation touches nothing.
	before := len(cs.Actions())
	if err := c.sync(ctx, "m"); err != nil || len(cs.Actions()) != before {
		t.Fatalf("sync of a plain role: err %v, %d actions", err, len(cs.Actions())-before)
	}
}
