package core

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/defaults"
	"github.com/skiff-sh/skiff/internal/registry/validation"
)

func pods() *registry.Resource {
	s := &registry.BaseStrategy{
		HasStatus:   true,
		DefaultFunc: func(obj runtime.Object) { defaults.PodSpec(&obj.(*corev1.Pod).Spec) },
		PrepareForCreateFunc: func(_ context.Context, obj runtime.Object) {
			pod := obj.(*corev1.Pod)
			pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: QOSClass(&pod.Spec)}
		},
		ValidateFunc: func(_ context.Context, obj runtime.Object) field.ErrorList {
			return validation.ValidatePodSpec(&obj.(*corev1.Pod).Spec, field.NewPath("spec"))
		},
		ValidateUpdateFunc: func(_ context.Context, obj, old runtime.Object) field.ErrorList {
			pod, o := obj.(*corev1.Pod), old.(*corev1.Pod)
			errs := validation.ValidatePodSpec(&pod.Spec, field.NewPath("spec"))
			return append(errs, validation.ValidatePodSpecUpdate(&pod.Spec, &o.Spec, field.NewPath("spec"))...)
		},
	}
	r := resource("pods", "Pod", true, func() runtime.Object { return &corev1.Pod{} },
		func() runtime.Object { return &corev1.PodList{} }, s)
	r.ShortNames = []string{"po"}
	r.Categories = []string{"all"}
	r.FieldSelectorKeys = []string{"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
		"spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"}
	r.FieldSet = podFields
	r.Subresources = map[string]*registry.Subresource{
		"status":   statusSub(s),
		"binding":  {Kind: "Binding", Verbs: []string{"create"}},
		"eviction": {Kind: "Eviction", Verbs: []string{"create"}},
		"log":      {Kind: "Pod", Verbs: []string{"get"}},
		"exec":     {Kind: "PodExecOptions", Verbs: []string{"get", "create"}},

		"attach":      {Kind: "PodAttachOptions", Verbs: []string{"get", "create"}},
		"portforward": {Kind: "PodPortForwardOptions", Verbs: []string{"get", "create"}},
	}
	r.GracefulDelete = podGracefulDelete
	return r
}

func podFields(obj runtime.Object) fields.Set {
	p := obj.(*corev1.Pod)
	f := fields.Set{
		"spec.nodeName":            p.Spec.NodeName,
		"spec.restartPolicy":       string(p.Spec.RestartPolicy),
		"spec.schedulerName":       p.Spec.SchedulerName,
		"spec.serviceAccountName":  p.Spec.ServiceAccountName,
		"spec.hostNetwork":         boolString(p.Spec.HostNetwork),
		"status.phase":             string(p.Status.Phase),
		"status.podIP":             p.Status.PodIP,
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
	// Upstream matches status.podIPs against every IP (comma-joined here).
	ips := ""
	for i, ip := range p.Status.PodIPs {
		if i > 0 {
			ips += ","
		}
		ips += ip.IP
	}
	f["status.podIPs"] = ips
	return f
}

// podGracefulDelete: unbound or finished pods, and gracePeriodSeconds=0,
// go at once; a pod on a node gets a deletion deadline and stays until its
// node reports it stopped.
func podGracefulDelete(_ context.Context, obj runtime.Object, opts *metav1.DeleteOptions) bool {
	pod := obj.(*corev1.Pod)
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	if opts != nil && opts.GracePeriodSeconds != nil {
		grace = *opts.GracePeriodSeconds
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		grace = 0
	}
	if grace <= 0 {
		// A pod already being deleted with a longer period is shortened to
		// now; it is removed unless finalizers hold it.
		return false
	}
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds <= grace {
		return true // already terminating with a shorter or equal period
	}
	deadline := metav1.NewTime(time.Now().Add(time.Duration(grace) * time.Second))
	pod.DeletionTimestamp = &deadline
	pod.DeletionGracePeriodSeconds = &grace
	return true
}

// QOSClass computes a pod's quality-of-service class as upstream does.
func QOSClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	guaranteed := true
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		for n, q := range c.Resources.Requests {
			if n == corev1.ResourceCPU || n == corev1.ResourceMemory {
				if !q.IsZero() {
					requests[n] = q
				}
			}
		}
		have := 0
		for n, q := range c.Resources.Limits {
			if n == corev1.ResourceCPU || n == corev1.ResourceMemory {
				if !q.IsZero() {
					limits[n] = q
					have++
				}
			}
		}
		if have < 2 {
			guaranteed = false
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for _, c := range all {
			for _, n := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, ok := c.Resources.Requests[n]
				lim := c.Resources.Limits[n]
				if ok && req.Cmp(lim) != 0 {
					guaranteed = false
				}
			}
		}
	}
	if guaranteed {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func replicationControllers() *registry.Resource {
	s := &registry.BaseStrategy{
		HasStatus: true,
		DefaultFunc: func(obj runtime.Object) {
			rc := obj.(*corev1.ReplicationController)
			if rc.Spec.Replicas == nil {
				one := int32(1)
				rc.Spec.Replicas = &one
			}
			if rc.Spec.Template != nil {
				if len(rc.Spec.Selector) == 0 {
					rc.Spec.Selector = rc.Spec.Template.Labels
				}
				if len(rc.Labels) == 0 {
					rc.Labels = rc.Spec.Template.Labels
				}
				defaults.PodTemplateSpec(rc.Spec.Template)
			}
		},
		ValidateFunc: func(_ context.Context, obj runtime.Object) field.ErrorList {
			rc := obj.(*corev1.ReplicationController)
			p := field.NewPath("spec")
			errs := validation.NonNegative(rc.Spec.Replicas, p.Child("replicas"))
			if len(rc.Spec.Selector) == 0 {
				errs = append(errs, field.Required(p.Child("selector"), ""))
			}
			if rc.Spec.Template == nil {
				return append(errs, field.Required(p.Child("template"), ""))
			}
			sel := &metav1.LabelSelector{MatchLabels: rc.Spec.Selector}
			errs = append(errs, validation.ValidateSelectorMatchesTemplate(sel, rc.Spec.Template.Labels, p.Child("selector"), p.Child("template", "metadata", "labels"))...)
			return append(errs, validation.ValidatePodTemplateSpec(rc.Spec.Template, p.Child("template"))...)
		},
	}
	r := resource("replicationcontrollers", "ReplicationController", true, func() runtime.Object { return &corev1.ReplicationController{} },
		func() runtime.Object { return &corev1.ReplicationControllerList{} }, s)
	r.ShortNames = []string{"rc"}
	r.Categories = []string{"all"}
	r.FieldSelectorKeys = []string{"status.replicas"}
	r.FieldSet = func(obj runtime.Object) fields.Set {
		return fields.Set{"status.replicas": itoa(obj.(*corev1.ReplicationController).Status.Replicas)}
	}
	r.Subresources = map[string]*registry.Subresource{
		"status": statusSub(s),
		"scale":  {Kind: "Scale", Verbs: []string{"get", "patch", "update"}},
	}
	return r
}
