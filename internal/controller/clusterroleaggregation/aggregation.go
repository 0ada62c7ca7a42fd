package clusterroleaggregation

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Name is upstream's controller name.
const Name = "clusterrole-aggregation"

// Controller keeps aggregated ClusterRoles' rules.
type Controller struct {
	client  kubernetes.Interface
	roles   rbaclisters.ClusterRoleLister
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
	metrics *metrics.Metrics
	synced  cache.InformerSynced
}

// New wires the controller to the shared ClusterRole informer.
func New(cc *controller.Context) (*Controller, error) {
	inf := cc.Informers.Rbac().V1().ClusterRoles()
	c := &Controller{
		client: cc.Client,
		roles:  inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: Name}),
		log:     cc.Logger.With("controller", Name),
		metrics: cc.Metrics,
		synced:  inf.Informer().HasSynced,
	}
	// Any change of any cluster role may change what an aggregated role
	// selects, so every aggregated role is looked at again (there are few).
	enqueueAll := func(any) { c.enqueueAggregated() }
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueAll, UpdateFunc: func(_, cur any) { enqueueAll(cur) }, DeleteFunc: enqueueAll,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) enqueueAggregated() {
	all, err := c.roles.List(labels.Everything())
	if err != nil {
		return
	}
	for _, r := range all {
		if r.AggregationRule != nil {
			c.queue.Add(r.Name)
		}
	}
}

// Run keeps aggregated roles up to date until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, c.queue, workers, []cache.InformerSynced{c.synced}, func(ctx context.Context) bool {
		return controller.ProcessNext(ctx, c.queue, Name, c.metrics, c.log, func(ctx context.Context, key string) (controller.Result, error) {
			return controller.Result{}, c.sync(ctx, key)
		})
	})
}

func (c *Controller) sync(ctx context.Context, name string) error {
	role, err := c.roles.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if role.AggregationRule == nil {
		return nil
	}
	all, err := c.roles.List(labels.Everything())
	if err != nil {
		return err
	}
	rules, err := Aggregate(role, all)
	if err != nil {
		return nil // a selector the API server let through but we cannot parse: nothing to do until it changes
	}
	if apiequality.Semantic.DeepEqual(rules, role.Rules) || (len(rules) == 0 && len(role.Rules) == 0) {
		return nil
	}
	role = role.DeepCopy()
	role.Rules = rules
	if _, err := c.client.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{FieldManager: Name}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("update clusterrole %s: %w", name, err)
	}
	c.log.Debug("aggregated rules", "clusterrole", name, "rules", len(rules))
	return nil
}

// Aggregate returns the union of the rules of the roles in all (other
// than role itself) that role's selectors match, in role-name order,
// each distinct rule once.
func Aggregate(role *rbacv1.ClusterRole, all []*rbacv1.ClusterRole) ([]rbacv1.PolicyRule, error) {
	matched := map[string]*rbacv1.ClusterRole{}
	for i := range role.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&role.AggregationRule.ClusterRoleSelectors[i])
		if err != nil {
			return nil, err
		}
		for _, r := range all {
			if r.Name != role.Name && sel.Matches(labels.Set(r.Labels)) {
				matched[r.Name] = r
			}
		}
	}
	names := make([]string, 0, len(matched))
	for n := range matched {
		names = append(names, n)
	}
	sort.Strings(names)
	var rules []rbacv1.PolicyRule
	for _, n := range names {
		for _, r := range matched[n].Rules {
			if !contains(rules, r) {
				rules = append(rules, r)
			}
		}
	}
	return rules, nil
}

func contains(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for i := range rules {
		if apiequality.Semantic.DeepEqual(rules[i], r) {
			return true
		}
	}
	return false
}
