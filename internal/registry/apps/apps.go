package apps

import (
	"context"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/defaults"
	"github.com/skiff-sh/skiff/internal/registry/validation"
)

var gv = appsv1.SchemeGroupVersion

func resource(plural, kind string, short []string, newFn, newList func() runtime.Object, s registry.Strategy) *registry.Resource {
	singular := map[string]string{"Deployment": "deployment", "ReplicaSet": "replicaset", "StatefulSet": "statefulset",
		"DaemonSet": "daemonset", "ControllerRevision": "controllerrevision"}[kind]
	return &registry.Resource{
		GroupVersionResource: gv.WithResource(plural),
		Kind:                 kind, SingularName: singular, ShortNames: short, Namespaced: true,
		New: newFn, NewList: newList, Strategy: s,
	}
}

func workloadSubresources(s registry.Strategy, scale bool) map[string]*registry.Subresource {
	subs := map[string]*registry.Subresource{
		"status": {Strategy: &registry.StatusStrategy{Parent: s}, Verbs: []string{"get", "patch", "update"}},
	}
	if scale {
		subs["scale"] = &registry.Subresource{Kind: "Scale", Verbs: []string{"get", "patch", "update"}}
	}
	return subs
}

// Resources returns the apps/v1 resources.
func Resources() []*registry.Resource {
	dep := &registry.BaseStrategy{HasStatus: true,
		DefaultFunc: func(o runtime.Object) { defaultDeployment(o.(*appsv1.Deployment)) },
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			return validateDeployment(o.(*appsv1.Deployment))
		},
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			return validateDeploymentUpdate(o.(*appsv1.Deployment), old.(*appsv1.Deployment))
		},
	}
	rs := &registry.BaseStrategy{HasStatus: true,
		DefaultFunc: func(o runtime.Object) {
			r := o.(*appsv1.ReplicaSet)
			defaultReplicas(&r.Spec.Replicas)
			defaults.PodTemplateSpec(&r.Spec.Template)
		},
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			r := o.(*appsv1.ReplicaSet)
			return validateWorkload(r.Spec.Replicas, r.Spec.Selector, &r.Spec.Template)
		},
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			r, or := o.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
			errs := validateWorkload(r.Spec.Replicas, r.Spec.Selector, &r.Spec.Template)
			return append(errs, immutableSelector(r.Spec.Selector, or.Spec.Selector)...)
		},
	}
	sts := &registry.BaseStrategy{HasStatus: true,
		DefaultFunc: func(o runtime.Object) { defaultStatefulSet(o.(*appsv1.StatefulSet)) },
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			s := o.(*appsv1.StatefulSet)
			return validateWorkload(s.Spec.Replicas, s.Spec.Selector, claimTemplateVolumes(s))
		},
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			s, os := o.(*appsv1.StatefulSet), old.(*appsv1.StatefulSet)
			errs := validateWorkload(s.Spec.Replicas, s.Spec.Selector, claimTemplateVolumes(s))
			// Upstream forbids changes other than replicas, ordinals,
			// template, updateStrategy, PVC retention policy and
			// minReadySeconds.
			a, b := s.Spec.DeepCopy(), os.Spec.DeepCopy()
			a.Replicas, a.Ordinals, a.Template, a.UpdateStrategy, a.PersistentVolumeClaimRetentionPolicy, a.MinReadySeconds, a.RevisionHistoryLimit =
				b.Replicas, b.Ordinals, b.Template, b.UpdateStrategy, b.PersistentVolumeClaimRetentionPolicy, b.MinReadySeconds, b.RevisionHistoryLimit
			if !apiequality.Semantic.DeepEqual(a, b) {
				errs = append(errs, field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
			}
			return errs
		},
	}
	ds := &registry.BaseStrategy{HasStatus: true,
		DefaultFunc: func(o runtime.Object) { defaultDaemonSet(o.(*appsv1.DaemonSet)) },
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			d := o.(*appsv1.DaemonSet)
			errs := validateWorkload(nil, d.Spec.Selector, &d.Spec.Template)
			if d.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
				errs = append(errs, field.NotSupported(field.NewPath("spec", "template", "spec", "restartPolicy"), d.Spec.Template.Spec.RestartPolicy, []string{"Always"}))
			}
			return errs
		},
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			d, od := o.(*appsv1.DaemonSet), old.(*appsv1.DaemonSet)
			errs := validateWorkload(nil, d.Spec.Selector, &d.Spec.Template)
			return append(errs, immutableSelector(d.Spec.Selector, od.Spec.Selector)...)
		},
	}
	cr := &registry.BaseStrategy{
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			c, oc := o.(*appsv1.ControllerRevision), old.(*appsv1.ControllerRevision)
			var errs field.ErrorList
			if !apiequality.Semantic.DeepEqual(c.Data, oc.Data) {
				errs = append(errs, field.Invalid(field.NewPath("data"), "", "field is immutable"))
			}
			// Revision stays mutable, as upstream: a rollback renumbers
			// the revision it returns to.
			return errs
		},
	}

	d := resource("deployments", "Deployment", []string{"deploy"}, func() runtime.Object { return &appsv1.Deployment{} }, func() runtime.Object { return &appsv1.DeploymentList{} }, dep)
	d.Categories = []string{"all"}
	d.Subresources = workloadSubresources(dep, true)
	r := resource("replicasets", "ReplicaSet", []string{"rs"}, func() runtime.Object { return &appsv1.ReplicaSet{} }, func() runtime.Object { return &appsv1.ReplicaSetList{} }, rs)
	r.Categories = []string{"all"}
	r.Subresources = workloadSubresources(rs, true)
	r.FieldSelectorKeys = []string{"status.replicas"}
	r.FieldSet = func(o runtime.Object) fields.Set {
		return fields.Set{"status.replicas": strconv.Itoa(int(o.(*appsv1.ReplicaSet).Status.Replicas))}
	}
	s := resource("statefulsets", "StatefulSet", []string{"sts"}, func() runtime.Object { return &appsv1.StatefulSet{} }, func() runtime.Object { return &appsv1.StatefulSetList{} }, sts)
	s.Categories = []string{"all"}
	s.Subresources = workloadSubresources(sts, true)
	dd := resource("daemonsets", "DaemonSet", []string{"ds"}, func() runtime.Object { return &appsv1.DaemonSet{} }, func() runtime.Object { return &appsv1.DaemonSetList{} }, ds)
	dd.Categories = []string{"all"}
	dd.Subresources = workloadSubresources(ds, false)
	c := resource("controllerrevisions", "ControllerRevision", nil, func() runtime.Object { return &appsv1.ControllerRevision{} }, func() runtime.Object { return &appsv1.ControllerRevisionList{} }, cr)
	return []*registry.Resource{d, r, s, dd, c}
}

func defaultReplicas(p **int32) {
	if *p == nil {
		one := int32(1)
		*p = &one
	}
}

func int32Ptr(v int32) *int32 { return &v }

func defaultDeployment(d *appsv1.Deployment) {
	defaultReplicas(&d.Spec.Replicas)
	if d.Spec.Strategy.Type == "" {
		d.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if d.Spec.Strategy.RollingUpdate == nil {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		q := intstr.FromString("25%")
		if d.Spec.Strategy.RollingUpdate.MaxUnavailable == nil {
			v := q
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = &v
		}
		if d.Spec.Strategy.RollingUpdate.MaxSurge == nil {
			v := q
			d.Spec.Strategy.RollingUpdate.MaxSurge = &v
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = int32Ptr(10)
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = int32Ptr(600)
	}
	defaults.PodTemplateSpec(&d.Spec.Template)
}

func defaultStatefulSet(s *appsv1.StatefulSet) {
	defaultReplicas(&s.Spec.Replicas)
	if s.Spec.PodManagementPolicy == "" {
		s.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if s.Spec.UpdateStrategy.Type == "" {
		s.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	if s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if s.Spec.UpdateStrategy.RollingUpdate == nil {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		if s.Spec.UpdateStrategy.RollingUpdate.Partition == nil {
			s.Spec.UpdateStrategy.RollingUpdate.Partition = int32Ptr(0)
		}
		if s.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable == nil {
			one := intstr.FromInt32(1)
			s.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &one
		}
	}
	if s.Spec.RevisionHistoryLimit == nil {
		s.Spec.RevisionHistoryLimit = int32Ptr(10)
	}
	if s.Spec.PersistentVolumeClaimRetentionPolicy == nil {
		s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if s.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted == "" {
		s.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if s.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled == "" {
		s.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	for i := range s.Spec.VolumeClaimTemplates {
		pvc := &s.Spec.VolumeClaimTemplates[i]
		if pvc.Spec.VolumeMode == nil {
			m := corev1.PersistentVolumeFilesystem
			pvc.Spec.VolumeMode = &m
		}
		if pvc.Status.Phase == "" {
			pvc.Status.Phase = corev1.ClaimPending
		}
	}
	defaults.PodTemplateSpec(&s.Spec.Template)
}

func defaultDaemonSet(d *appsv1.DaemonSet) {
	if d.Spec.UpdateStrategy.Type == "" {
		d.Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if d.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if d.Spec.UpdateStrategy.RollingUpdate == nil {
			d.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if d.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable == nil {
			one := intstr.FromInt32(1)
			d.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &one
		}
		if d.Spec.UpdateStrategy.RollingUpdate.MaxSurge == nil {
			zero := intstr.FromInt32(0)
			d.Spec.UpdateStrategy.RollingUpdate.MaxSurge = &zero
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = int32Ptr(10)
	}
	defaults.PodTemplateSpec(&d.Spec.Template)
}

func validateWorkload(replicas *int32, sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec) field.ErrorList {
	spec := field.NewPath("spec")
	errs := validation.NonNegative(replicas, spec.Child("replicas"))
	errs = append(errs, validation.ValidateSelectorMatchesTemplate(sel, tmpl.Labels, spec.Child("selector"), spec.Child("template", "metadata", "labels"))...)
	return append(errs, validation.ValidatePodTemplateSpec(tmpl, spec.Child("template"))...)
}

func validateDeployment(d *appsv1.Deployment) field.ErrorList {
	errs := validateWorkload(d.Spec.Replicas, d.Spec.Selector, &d.Spec.Template)
	spec := field.NewPath("spec")
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if d.Spec.Strategy.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(spec.Child("strategy", "rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
			unavailable := ru.MaxUnavailable != nil && (ru.MaxUnavailable.IntVal != 0 || (ru.MaxUnavailable.Type == intstr.String && ru.MaxUnavailable.StrVal != "0%"))
			surge := ru.MaxSurge != nil && (ru.MaxSurge.IntVal != 0 || (ru.MaxSurge.Type == intstr.String && ru.MaxSurge.StrVal != "0%"))
			if !unavailable && !surge {
				errs = append(errs, field.Invalid(spec.Child("strategy", "rollingUpdate", "maxUnavailable"), ru.MaxUnavailable, "may not be 0 when `maxSurge` is 0"))
			}
		}
	default:
		errs = append(errs, field.NotSupported(spec.Child("strategy", "type"), d.Spec.Strategy.Type, []string{"Recreate", "RollingUpdate"}))
	}
	errs = append(errs, validation.NonNegative(d.Spec.RevisionHistoryLimit, spec.Child("revisionHistoryLimit"))...)
	errs = append(errs, validation.NonNegative(&d.Spec.MinReadySeconds, spec.Child("minReadySeconds"))...)
	if p := d.Spec.ProgressDeadlineSeconds; p != nil && *p <= d.Spec.MinReadySeconds {
		errs = append(errs, field.Invalid(spec.Child("progressDeadlineSeconds"), *p, "must be greater than minReadySeconds"))
	}
	if d.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(spec.Child("template", "spec", "restartPolicy"), d.Spec.Template.Spec.RestartPolicy, []string{"Always"}))
	}
	return errs
}

func validateDeploymentUpdate(d, old *appsv1.Deployment) field.ErrorList {
	return append(validateDeployment(d), immutableSelector(d.Spec.Selector, old.Spec.Selector)...)
}

func immutableSelector(sel, old *metav1.LabelSelector) field.ErrorList {
	if !apiequality.Semantic.DeepEqual(sel, old) {
		return field.ErrorList{field.Invalid(field.NewPath("spec", "selector"), sel, "field is immutable")}
	}
	return nil
}

// claimTemplateVolumes is the template as the pods will have it: each
// volumeClaimTemplate a claim volume of that name, so that volumeMounts
// may name them.
func claimTemplateVolumes(s *appsv1.StatefulSet) *corev1.PodTemplateSpec {
	if len(s.Spec.VolumeClaimTemplates) == 0 {
		return &s.Spec.Template
	}
	t := s.Spec.Template.DeepCopy()
	for _, c := range s.Spec.VolumeClaimTemplates {
		if !slices.ContainsFunc(t.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.Name }) {
			t.Spec.Volumes = append(t.Spec.Volumes, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.Name}}})
		}
	}
	return t
}
