package apiserver

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/storage"
)

// admitCreate runs the built-in admission steps that need other objects
// (which strategies, being I/O-free, cannot read) on a new object.
func (s *Server) admitCreate(ctx context.Context, res *resource, obj runtime.Object) error {
	if err := s.admitLimitRanges(ctx, res, obj); err != nil {
		return err
	}
	s.admitDefaultStorageClass(ctx, obj)
	admitStorageProtection(obj)
	if pod, ok := obj.(*corev1.Pod); ok {
		if err := s.admitServiceAccount(ctx, pod); err != nil {
			return err
		}
		addDefaultTolerations(pod)
		return s.admitPodPriority(ctx, pod)
	}
	return nil
}

// defaultTolerationSeconds is how long pods stay on a node that went
// not-ready or unreachable, as upstream's DefaultTolerationSeconds admission.
const defaultTolerationSeconds int64 = 300

// addDefaultTolerations gives a pod NoExecute tolerations for the
// not-ready and unreachable taints unless it tolerates them already.
func addDefaultTolerations(pod *corev1.Pod) {
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		covered := false
		for _, t := range pod.Spec.Tolerations {
			if (t.Key == key || t.Key == "" && t.Operator == corev1.TolerationOpExists) &&
				(t.Effect == "" || t.Effect == corev1.TaintEffectNoExecute) {
				covered = true
				break
			}
		}
		if !covered {
			secs := defaultTolerationSeconds
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs})
		}
	}
}

var priorityClasses = schema.GroupVersionResource{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"}

// admitPodPriority resolves spec.priorityClassName into spec.priority and
// spec.preemptionPolicy, as upstream's Priority admission plugin: a named
// class must exist (403 otherwise); without a name the global default
// class applies, else priority 0.
func (s *Server) admitPodPriority(ctx context.Context, pod *corev1.Pod) error {
	pcRes := s.resources[priorityClasses]
	if pcRes == nil {
		return nil
	}
	var pc *schedulingv1.PriorityClass
	if name := pod.Spec.PriorityClassName; name != "" {
		pc = &schedulingv1.PriorityClass{}
		if err := getCachedOrLive(ctx, pcRes, pcRes.key("", name), pc); err != nil {
			if storage.IsNotFound(err) {
				return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
					fmt.Errorf("no PriorityClass with name %s was found", name))
			}
			return err
		}
	} else {
		list := &schedulingv1.PriorityClassList{}
		if err := pcRes.store.GetList(ctx, pcRes.listKey(""), storage.ListOptions{Recursive: true, ResourceVersion: "0"}, list); err != nil {
			return err
		}
		for i := range list.Items {
			if list.Items[i].GlobalDefault {
				pc = &list.Items[i]
				pod.Spec.PriorityClassName = pc.Name
				break
			}
		}
	}
	var value int32
	policy := corev1.PreemptLowerPriority
	if pc != nil {
		value = pc.Value
		if pc.PreemptionPolicy != nil {
			policy = *pc.PreemptionPolicy
		}
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != value {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
			fmt.Errorf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name", *pod.Spec.Priority, value))
	}
	pod.Spec.Priority = &value
	if pod.Spec.PreemptionPolicy == nil {
		pod.Spec.PreemptionPolicy = &policy
	}
	return nil
}

// getCachedOrLive reads from the watch cache and, when the object is not
// there, from etcd: one created a moment ago may not have reached the cache.
func getCachedOrLive(ctx context.Context, res *resource, key string, out runtime.Object) error {
	err := res.store.Get(ctx, key, storage.GetOptions{ResourceVersion: "0"}, out)
	if storage.IsNotFound(err) {
		err = res.store.Get(ctx, key, storage.GetOptions{}, out)
	}
	return err
}

// liveLookupTTL is how long a live read that found no policy objects
// (quotas, limit ranges) in a namespace is trusted, as upstream's
// admission plugins cache their live lookups.
const liveLookupTTL = 30 * time.Second

// listPolicies lists the policy objects of res (ResourceQuotas,
// LimitRanges) in ns for admission. The watch cache answers; when it has
// none, a consistent read makes sure one created a moment ago (and not yet
// in the cache) is not missed, and an empty answer is trusted for
// liveLookupTTL so that namespaces without policies cost no etcd read per
// write.
func (s *Server) listPolicies(ctx context.Context, res *resource, ns string, list runtime.Object) error {
	if err := res.store.GetList(ctx, res.listKey(ns), storage.ListOptions{Recursive: true, ResourceVersion: "0"}, list); err != nil {
		return err
	}
	if meta.LenList(list) > 0 {
		return nil
	}
	key := res.gr.String() + "/" + ns
	if at, ok := s.emptyLookups.Load(key); ok && s.now().Sub(at.(time.Time)) < liveLookupTTL {
		return nil
	}
	if err := res.store.GetList(ctx, res.listKey(ns), storage.ListOptions{Recursive: true}, list); err != nil {
		return err
	}
	if meta.LenList(list) == 0 {
		s.emptyLookups.Store(key, s.now())
	} else {
		s.emptyLookups.Delete(key)
	}
	return nil
}
