package core

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var supportedAccessModes = []string{string(corev1.ReadOnlyMany), string(corev1.ReadWriteMany), string(corev1.ReadWriteOnce), string(corev1.ReadWriteOncePod)}

func validateAccessModes(p *field.Path, modes []corev1.PersistentVolumeAccessMode, required string) field.ErrorList {
	var errs field.ErrorList
	if len(modes) == 0 {
		return append(errs, field.Required(p, required))
	}
	rwop := false
	for _, m := range modes {
		switch m {
		case corev1.ReadWriteOncePod:
			rwop = true
		case corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOnce:
		default:
			errs = append(errs, field.NotSupported(p, m, supportedAccessModes))
		}
	}
	if rwop && len(modes) > 1 {
		errs = append(errs, field.Forbidden(p, "may not use ReadWriteOncePod with other access modes"))
	}
	return errs
}

func validateVolumeMode(p *field.Path, m *corev1.PersistentVolumeMode) field.ErrorList {
	if m != nil && *m != corev1.PersistentVolumeFilesystem && *m != corev1.PersistentVolumeBlock {
		return field.ErrorList{field.NotSupported(p, *m, []string{string(corev1.PersistentVolumeBlock), string(corev1.PersistentVolumeFilesystem)})}
	}
	return nil
}

// volumeSources counts the volume types a PersistentVolume sets.
func volumeSources(s *corev1.PersistentVolumeSource) int {
	n := 0
	for _, set := range []bool{s.GCEPersistentDisk != nil, s.AWSElasticBlockStore != nil, s.HostPath != nil, s.Glusterfs != nil,
		s.NFS != nil, s.RBD != nil, s.ISCSI != nil, s.Cinder != nil, s.CephFS != nil, s.FC != nil, s.Flocker != nil,
		s.FlexVolume != nil, s.AzureFile != nil, s.VsphereVolume != nil, s.Quobyte != nil, s.AzureDisk != nil,
		s.PhotonPersistentDisk != nil, s.PortworxVolume != nil, s.ScaleIO != nil, s.Local != nil, s.StorageOS != nil, s.CSI != nil} {
		if set {
			n++
		}
	}
	return n
}

// validatePV is upstream's ValidatePersistentVolume for what skiff serves:
// access modes, capacity (storage only), exactly one volume source,
// reclaim policy, volume mode, hostPath/local paths, node affinity for
// local volumes and the claimRef's name.
func validatePV(pv *corev1.PersistentVolume) field.ErrorList {
	spec := field.NewPath("spec")
	errs := validateAccessModes(spec.Child("accessModes"), pv.Spec.AccessModes, "")
	if len(pv.Spec.Capacity) == 0 {
		errs = append(errs, field.Required(spec.Child("capacity"), ""))
	}
	for k, q := range pv.Spec.Capacity {
		if k != corev1.ResourceStorage {
			errs = append(errs, field.NotSupported(spec.Child("capacity"), k, []string{string(corev1.ResourceStorage)}))
			continue
		}
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(spec.Child("capacity").Key(string(k)), q.String(), "must be greater than or equal to 0"))
		}
	}
	switch rp := pv.Spec.PersistentVolumeReclaimPolicy; rp {
	case corev1.PersistentVolumeReclaimRetain, corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRecycle:
	default:
		errs = append(errs, field.NotSupported(spec.Child("persistentVolumeReclaimPolicy"), rp,
			[]string{string(corev1.PersistentVolumeReclaimDelete), string(corev1.PersistentVolumeReclaimRecycle), string(corev1.PersistentVolumeReclaimRetain)}))
	}
	errs = append(errs, validateVolumeMode(spec.Child("volumeMode"), pv.Spec.VolumeMode)...)
	switch n := volumeSources(&pv.Spec.PersistentVolumeSource); {
	case n == 0:
		errs = append(errs, field.Required(spec, "must specify a volume type"))
	case n > 1:
		errs = append(errs, field.Forbidden(spec, "may not specify more than 1 volume type"))
	}
	if hp := pv.Spec.HostPath; hp != nil {
		if hp.Path == "" {
			errs = append(errs, field.Required(spec.Child("hostPath", "path"), ""))
		}
		if hp.Type != nil && !validHostPathType(*hp.Type) {
			errs = append(errs, field.NotSupported(spec.Child("hostPath", "type"), *hp.Type, hostPathTypes))
		}
	}
	if l := pv.Spec.Local; l != nil {
		if l.Path == "" {
			errs = append(errs, field.Required(spec.Child("local", "path"), ""))
		}
		if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
			errs = append(errs, field.Required(spec.Child("nodeAffinity"), "Local volume requires node affinity"))
		}
	}
	if na := pv.Spec.NodeAffinity; na != nil && na.Required != nil && len(na.Required.NodeSelectorTerms) == 0 {
		errs = append(errs, field.Required(spec.Child("nodeAffinity", "required", "nodeSelectorTerms"), "must have at least one node selector term"))
	}
	if cr := pv.Spec.ClaimRef; cr != nil && cr.Name == "" {
		errs = append(errs, field.Required(spec.Child("claimRef", "name"), ""))
	}
	return errs
}

var hostPathTypes = []string{"", string(corev1.HostPathDirectoryOrCreate), string(corev1.HostPathDirectory), string(corev1.HostPathFileOrCreate),
	string(corev1.HostPathFile), string(corev1.HostPathSocket), string(corev1.HostPathCharDev), string(corev1.HostPathBlockDev)}

func validHostPathType(t corev1.HostPathType) bool {
	for _, s := range hostPathTypes {
		if string(t) == s {
			return true
		}
	}
	return false
}

// validatePVUpdate also keeps the volume source and volume mode, as
// upstream.
func validatePVUpdate(pv, old *corev1.PersistentVolume) field.ErrorList {
	errs := validatePV(pv)
	spec := field.NewPath("spec")
	if !apiequality.Semantic.DeepEqual(pv.Spec.PersistentVolumeSource, old.Spec.PersistentVolumeSource) {
		errs = append(errs, field.Forbidden(spec.Child("persistentvolumesource"), "spec.persistentvolumesource is immutable after creation"))
	}
	if !apiequality.Semantic.DeepEqual(pv.Spec.VolumeMode, old.Spec.VolumeMode) {
		errs = append(errs, field.Invalid(spec.Child("volumeMode"), pv.Spec.VolumeMode, "field is immutable"))
	}
	if old.Spec.NodeAffinity != nil && !apiequality.Semantic.DeepEqual(pv.Spec.NodeAffinity, old.Spec.NodeAffinity) {
		errs = append(errs, field.Invalid(spec.Child("nodeAffinity"), "", "field is immutable"))
	}
	return errs
}

// validatePVC is upstream's ValidatePersistentVolumeClaim core.
func validatePVC(pvc *corev1.PersistentVolumeClaim) field.ErrorList {
	spec := field.NewPath("spec")
	errs := validateAccessModes(spec.Child("accessModes"), pvc.Spec.AccessModes, "at least 1 access mode is required")
	q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	switch {
	case !ok && pvc.Spec.DataSource == nil:
		errs = append(errs, field.Required(spec.Child("resources").Key(string(corev1.ResourceStorage)), ""))
	case ok && q.Sign() <= 0:
		errs = append(errs, field.Invalid(spec.Child("resources", "requests").Key(string(corev1.ResourceStorage)), q.String(), "must be greater than zero"))
	}
	errs = append(errs, validateVolumeMode(spec.Child("volumeMode"), pvc.Spec.VolumeMode)...)
	return errs
}

// validatePVCUpdate: a claim's spec is immutable but for growing its
// storage request, setting volumeName once (binding) and setting a class
// on a claim that has none and is unbound, as upstream.
func validatePVCUpdate(pvc, old *corev1.PersistentVolumeClaim) field.ErrorList {
	errs := validatePVC(pvc)
	a, b := pvc.Spec.DeepCopy(), old.Spec.DeepCopy()
	a.Resources.Requests, b.Resources.Requests = nil, nil
	a.VolumeAttributesClassName, b.VolumeAttributesClassName = nil, nil
	if b.VolumeName == "" {
		b.VolumeName = a.VolumeName
	}
	if b.StorageClassName == nil && old.Spec.VolumeName == "" {
		b.StorageClassName = a.StorageClassName
	}
	if !apiequality.Semantic.DeepEqual(a, b) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"))
	}
	nq, oq := pvc.Spec.Resources.Requests[corev1.ResourceStorage], old.Spec.Resources.Requests[corev1.ResourceStorage]
	if nq.Cmp(oq) < 0 && old.Status.Phase == corev1.ClaimBound {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "resources", "requests", "storage"), "field can not be less than status.capacity"))
	}
	return errs
}

func pvValidators() (func(context.Context, runtime.Object) field.ErrorList, func(context.Context, runtime.Object, runtime.Object) field.ErrorList) {
	return func(_ context.Context, o runtime.Object) field.ErrorList {
			return validatePV(o.(*corev1.PersistentVolume))
		},
		func(_ context.Context, o, old runtime.Object) field.ErrorList {
			return validatePVUpdate(o.(*corev1.PersistentVolume), old.(*corev1.PersistentVolume))
		}
}

func pvcValidators() (func(context.Context, runtime.Object) field.ErrorList, func(context.Context, runtime.Object, runtime.Object) field.ErrorList) {
	return func(_ context.Context, o runtime.Object) field.ErrorList {
			return validatePVC(o.(*corev1.PersistentVolumeClaim))
		},
		func(_ context.Context, o, old runtime.Object) field.ErrorList {
			return validatePVCUpdate(o.(*corev1.PersistentVolumeClaim), old.(*corev1.PersistentVolumeClaim))
		}
}
