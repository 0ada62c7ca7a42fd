package core

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/limitrange"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/defaults"
)

// setNamespaceNameLabel sets the immutable kubernetes.io/metadata.name
// label upstream puts on every namespace (network policies select
// namespaces by it).
func setNamespaceNameLabel(ns *corev1.Namespace) {
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
}

func namespaces() *registry.Resource {
	s := &registry.BaseStrategy{
		HasStatus: true,
		PrepareForCreateFunc: func(_ context.Context, obj runtime.Object) {
			ns := obj.(*corev1.Namespace)
			ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
			hasKube := false
			for _, f := range ns.Spec.Finalizers {
				hasKube = hasKube || f == corev1.FinalizerKubernetes
			}
			if !hasKube {
				ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
			}
			setNamespaceNameLabel(ns)
		},
		PrepareForUpdateFunc: func(_ context.Context, obj, old runtime.Object) {
			// spec.finalizers change only through the finalize subresource.
			ns := obj.(*corev1.Namespace)
			ns.Spec.Finalizers = old.(*corev1.Namespace).Spec.Finalizers
			setNamespaceNameLabel(ns)
		},
	}
	r := resource("namespaces", "Namespace", false, func() runtime.Object { return &corev1.Namespace{} },
		func() runtime.Object { return &corev1.NamespaceList{} }, s)
	r.ShortNames = []string{"ns"}
	r.ValidateName = apivalidation.ValidateNamespaceName
	r.FieldSelectorKeys = []string{"status.phase"}
	r.FieldSet = func(obj runtime.Object) fields.Set {
		return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
	}
	r.Subresources = map[string]*registry.Subresource{
		"status":   statusSub(s),
		"finalize": {Verbs: []string{"update"}},
	}
	r.GracefulDelete = func(_ context.Context, obj runtime.Object, _ *metav1.DeleteOptions) bool {
		ns := obj.(*corev1.Namespace)
		if ns.DeletionTimestamp == nil {
			now := metav1.NewTime(time.Now())
			ns.DeletionTimestamp = &now
			zero := int64(0)
			ns.DeletionGracePeriodSeconds = &zero
		}
		ns.Status.Phase = corev1.NamespaceTerminating
		// The namespace stays until its content is gone and the namespace
		// controller has removed the spec finalizers.
		return len(ns.Spec.Finalizers) > 0
	}
	return r
}

func nodes() *registry.Resource {
	// A kubelet registers its node with status, so status is kept on
	// create; on update the main endpoint keeps the stored status.
	s := &registry.BaseStrategy{
		ValidateFunc: func(_ context.Context, obj runtime.Object) field.ErrorList { return validateNode(obj.(*corev1.Node)) },
		PrepareForUpdateFunc: func(_ context.Context, obj, old runtime.Object) {
			obj.(*corev1.Node).Status = old.(*corev1.Node).Status
		},
	}
	r := resource("nodes", "Node", false, func() runtime.Object { return &corev1.Node{} },
		func() runtime.Object { return &corev1.NodeList{} }, s)
	r.ShortNames = []string{"no"}
	r.FieldSelectorKeys = []string{"spec.unschedulable"}
	r.FieldSet = func(obj runtime.Object) fields.Set {
		n := obj.(*corev1.Node)
		return fields.Set{"spec.unschedulable": boolString(n.Spec.Unschedulable)}
	}
	r.Subresources = map[string]*registry.Subresource{
		"status": statusSub(s),
		"proxy":  {Kind: "NodeProxyOptions", Verbs: []string{"create", "delete", "get", "patch", "update"}},
	}
	return r
}

func validateNode(n *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	for i, t := range n.Spec.Taints {
		p := field.NewPath("spec", "taints").Index(i)
		if t.Key == "" {
			errs = append(errs, field.Required(p.Child("key"), ""))
		}
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		case "":
			errs = append(errs, field.Required(p.Child("effect"), ""))
		default:
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}))
		}
	}
	return errs
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func endpoints() *registry.Resource {
	s := &registry.BaseStrategy{CreateOnUpdate: true, ValidateFunc: func(_ context.Context, obj runtime.Object) field.ErrorList {
		return validateEndpoints(obj.(*corev1.Endpoints))
	}, DefaultFunc: func(obj runtime.Object) {
		for i := range obj.(*corev1.Endpoints).Subsets {
			for j := range obj.(*corev1.Endpoints).Subsets[i].Ports {
				if p := &obj.(*corev1.Endpoints).Subsets[i].Ports[j]; p.Protocol == "" {
					p.Protocol = corev1.ProtocolTCP
				}
			}
		}
	}}
	r := resource("endpoints", "Endpoints", true, func() runtime.Object { return &corev1.Endpoints{} },
		func() runtime.Object { return &corev1.EndpointsList{} }, s)
	r.ShortNames = []string{"ep"}
	r.SingularName = "endpoints"
	return r
}

func validateEndpoints(ep *corev1.Endpoints) field.ErrorList {
	var errs field.ErrorList
	for i, ss := range ep.Subsets {
		p := field.NewPath("subsets").Index(i)
		for j, a := range ss.Addresses {
			if a.IP == "" {
				errs = append(errs, field.Required(p.Child("addresses").Index(j).Child("ip"), ""))
			}
		}
		for j, port := range ss.Ports {
			if port.Port < 1 || port.Port > 65535 {
				errs = append(errs, field.Invalid(p.Child("ports").Index(j).Child("port"), port.Port, "must be between 1 and 65535, inclusive"))
			}
		}
	}
	return errs
}

func configMaps() *registry.Resource {
	s := &registry.BaseStrategy{
		ValidateFunc: func(_ context.Context, obj runtime.Object) field.ErrorList {
			cm := obj.(*corev1.ConfigMap)
			return validateDataKeys(cm.Data, cm.BinaryData)
		},
		ValidateUpdateFunc: func(_ context.Context, obj, old runtime.Object) field.ErrorList {
			cm, o := obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap)
			errs := validateDataKeys(cm.Data, cm.BinaryData)
			return append(errs, immutableData(o.Immutable, cm.Immutable, !dataEqual(cm.Data, o.Data) || !binEqual(cm.BinaryData, o.BinaryData))...)
		},
	}
	r := resource("configmaps", "ConfigMap", true, func() runtime.Object { return &corev1.ConfigMap{} },
		func() runtime.Object { return &corev1.ConfigMapList{} }, s)
	r.ShortNames = []string{"cm"}
	return r
}

func secrets() *registry.Resource {
	s := &registry.BaseStrategy{
		DefaultFunc: func(obj runtime.Object) {
			sec := obj.(*corev1.Secret)
			if sec.Type == "" {
				sec.Type = corev1.SecretTypeOpaque
			}
			// stringData is write-only: merged into data.
			for k, v := range sec.StringData {
				if sec.Data == nil {
					sec.Data = map[string][]byte{}
				}
				sec.Data[k] = []byte(v)
			}
			sec.StringData = nil
		},
		ValidateFunc: func(_ context.Context, obj runtime.Object) field.ErrorList {
			return validateDataKeys(nil, obj.(*corev1.Secret).Data)
		},
		ValidateUpdateFunc: func(_ context.Context, obj, old runtime.Object) field.ErrorList {
			sec, o := obj.(*corev1.Secret), old.(*corev1.Secret)
			errs := validateDataKeys(nil, sec.Data)
			if sec.Type != o.Type {
				errs = append(errs, field.Invalid(field.NewPath("type"), sec.Type, "field is immutable"))
			}
			return append(errs, immutableData(o.Immutable, sec.Immutable, !binEqual(sec.Data, o.Data))...)
		},
	}
	r := resource("secrets", "Secret", true, func() runtime.Object { return &corev1.Secret{} },
		func() runtime.Object { return &corev1.SecretList{} }, s)
	r.FieldSelectorKeys = []string{"type"}
	r.FieldSet = func(obj runtime.Object) fields.Set { return fields.Set{"type": string(obj.(*corev1.Secret).Type)} }
	return r
}

func serviceAccounts() *registry.Resource {
	r := resource("serviceaccounts", "ServiceAccount", true, func() runtime.Object { return &corev1.ServiceAccount{} },
		func() runtime.Object { return &corev1.ServiceAccountList{} }, &registry.BaseStrategy{})
	r.ShortNames = []string{"sa"}
	// token: TokenRequest (authentication.k8s.io/v1), served by the API
	// server's token issuer.
	r.Subresources = map[string]*registry.Subresource{"token": {Kind: "TokenRequest", Verbs: []string{"create"}}}
	return r
}

func limitRanges() *registry.Resource {
	r := resource("limitranges", "LimitRange", true, func() runtime.Object { return &corev1.LimitRange{} },
		func() runtime.Object { return &corev1.LimitRangeList{} }, &registry.BaseStrategy{
			DefaultFunc: func(obj runtime.Object) { limitrange.DefaultItems(obj.(*corev1.LimitRange)) },
			ValidateFunc: func(_ context.Context, obj runtime.Object) field.ErrorList {
				return limitrange.Validate(obj.(*corev1.LimitRange))
			},
			ValidateUpdateFunc: func(_ context.Context, obj, _ runtime.Object) field.ErrorList {
				return limitrange.Validate(obj.(*corev1.LimitRange))
			},
		})
	r.ShortNames = []string{"limits"}
	return r
}

func resourceQuotas() *registry.Resource {
	s := &registry.BaseStrategy{HasStatus: true}
	r := resource("resourcequotas", "ResourceQuota", true, func() runtime.Object { return &corev1.ResourceQuota{} },
		func() runtime.Object { return &corev1.ResourceQuotaList{} }, s)
	r.ShortNames = []string{"quota"}
	r.Subresources = map[string]*registry.Subresource{"status": statusSub(s)}
	return r
}

func persistentVolumes() *registry.Resource {
	validate, validateUpdate := pvValidators()
	s := &registry.BaseStrategy{
		HasStatus: true, ValidateFunc: validate, ValidateUpdateFunc: validateUpdate,
		DefaultFunc: func(obj runtime.Object) {
			pv := obj.(*corev1.PersistentVolume)
			if pv.Spec.PersistentVolumeReclaimPolicy == "" {
				pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
			}
			if pv.Spec.VolumeMode == nil {
				m := corev1.PersistentVolumeFilesystem
				pv.Spec.VolumeMode = &m
			}
		},
		PrepareForCreateFunc: func(_ context.Context, obj runtime.Object) {
			obj.(*corev1.PersistentVolume).Status.Phase = corev1.VolumePending
		},
	}
	r := resource("persistentvolumes", "PersistentVolume", false, func() runtime.Object { return &corev1.PersistentVolume{} },
		func() runtime.Object { return &corev1.PersistentVolumeList{} }, s)
	r.ShortNames = []string{"pv"}
	r.Subresources = map[string]*registry.Subresource{"status": statusSub(s)}
	return r
}

func persistentVolumeClaims() *registry.Resource {
	validate, validateUpdate := pvcValidators()
	s := &registry.BaseStrategy{
		HasStatus: true, ValidateFunc: validate, ValidateUpdateFunc: validateUpdate,
		DefaultFunc: func(obj runtime.Object) {
			pvc := obj.(*corev1.PersistentVolumeClaim)
			if pvc.Spec.VolumeMode == nil {
				m := corev1.PersistentVolumeFilesystem
				pvc.Spec.VolumeMode = &m
			}
		},
		PrepareForCreateFunc: func(_ context.Context, obj runtime.Object) {
			obj.(*corev1.PersistentVolumeClaim).Status.Phase = corev1.ClaimPending
		},
	}
	r := resource("persistentvolumeclaims", "PersistentVolumeClaim", true, func() runtime.Object { return &corev1.PersistentVolumeClaim{} },
		func() runtime.Object { return &corev1.PersistentVolumeClaimList{} }, s)
	r.ShortNames = []string{"pvc"}
	r.Subresources = map[string]*registry.Subresource{"status": statusSub(s)}
	return r
}

func podTemplates() *registry.Resource {
	s := &registry.BaseStrategy{
		DefaultFunc: func(obj runtime.Object) { defaults.PodTemplateSpec(&obj.(*corev1.PodTemplate).Template) },
	}
	return resource("podtemplates", "PodTemplate", true, func() runtime.Object { return &corev1.PodTemplate{} },
		func() runtime.Object { return &corev1.PodTemplateList{} }, s)
}

func validateDataKeys(data map[string]string, bin map[string][]byte) field.ErrorList {
	var errs field.ErrorList
	size := 0
	for k, v := range data {
		for _, msg := range utilvalidation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
		}
		size += len(v)
	}
	for k, v := range bin {
		for _, msg := range utilvalidation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
		}
		if _, dup := data[k]; dup {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data"))
		}
		size += len(v)
	}
	if size > corev1.MaxSecretSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", corev1.MaxSecretSize))
	}
	return errs
}

func immutableData(oldImmutable, newImmutable *bool, changed bool) field.ErrorList {
	if oldImmutable == nil || !*oldImmutable {
		return nil
	}
	var errs field.ErrorList
	if newImmutable == nil || !*newImmutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
	}
	if changed {
		errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
	}
	return errs
}

func dataEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func binEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || string(w) != string(v) {
			return false
		}
	}
	return true
}
