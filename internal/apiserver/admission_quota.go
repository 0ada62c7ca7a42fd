package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/quota"
	"github.com/skiff-sh/skiff/internal/storage"
)

var resourceQuotas = schema.GroupVersionResource{Version: "v1", Resource: "resourcequotas"}

// admitQuota is upstream's ResourceQuota admission for a new object: every
// quota of its namespace that it counts against must have room for it, and
// (unless dryRun) the charge is added to the quota's status.used before the
// object is stored, so concurrent creates cannot overshoot. The
// resourcequota controller recomputes usage from the objects afterwards
// (releasing what deletes and failed writes freed).
func (s *Server) admitQuota(ctx context.Context, res *resource, obj runtime.Object, dryRun bool) error {
	qRes := s.resources[resourceQuotas]
	if qRes == nil || !res.Namespaced {
		return nil
	}
	m, err := meta.Accessor(obj)
	if err != nil || m.GetNamespace() == "" {
		return nil
	}
	ns := m.GetNamespace()
	list := &corev1.ResourceQuotaList{}
	if err := s.listPolicies(ctx, qRes, ns, list); err != nil {
		return err
	}
	if len(list.Items) == 0 {
		return nil
	}
	forbid := func(format string, args ...any) error {
		return apierrors.NewForbidden(res.gr, m.GetName(), fmt.Errorf(format, args...))
	}
	pod, _ := obj.(*corev1.Pod)
	now := s.now()
	for i := range list.Items {
		q := &list.Items[i]
		if pod != nil && res.gr == podsGR {
			if missing := quota.MissingRequirements(q, pod); missing != "" {
				return forbid("failed quota: %s: must specify %s", q.Name, missing)
			}
		}
		charge := quota.Charge(q, res.gr, obj, now)
		if len(charge) == 0 {
			continue
		}
		var unknown []string
		for name := range charge {
			if _, ok := q.Status.Used[name]; !ok {
				unknown = append(unknown, string(name))
			}
		}
		if len(unknown) > 0 {
			return forbid("status unknown for quota: %s, resources: %s", q.Name, strings.Join(slices.Sorted(slices.Values(unknown)), ","))
		}
		if dryRun {
			if over := quota.Exceeds(q.Status.Hard, q.Status.Used, charge); len(over) > 0 {
				return forbid("exceeded quota: %s, requested: %s, used: %s, limited: %s", q.Name,
					quota.Format(charge, over), quota.Format(q.Status.Used, over), quota.Format(q.Status.Hard, over))
			}
			continue
		}
		out := &corev1.ResourceQuota{}
		var exceeded error
		err := qRes.store.GuaranteedUpdate(ctx, qRes.key(ns, q.Name), out, false, nil, func(cur runtime.Object) (runtime.Object, error) {
			live := cur.DeepCopyObject().(*corev1.ResourceQuota)
			if over := quota.Exceeds(live.Status.Hard, live.Status.Used, charge); len(over) > 0 {
				exceeded = forbid("exceeded quota: %s, requested: %s, used: %s, limited: %s", live.Name,
					quota.Format(charge, over), quota.Format(live.Status.Used, over), quota.Format(live.Status.Hard, over))
				return nil, exceeded
			}
			live.Status.Used = quota.Add(live.Status.Used, charge)
			return live, nil
		})
		switch {
		case exceeded != nil && errors.Is(err, exceeded):
			return exceeded
		case storage.IsNotFound(err):
			continue // deleted meanwhile: it limits nothing now
		case err != nil:
			return err
		}
	}
	return nil
}

var podsGR = schema.GroupResource{Resource: "pods"}
