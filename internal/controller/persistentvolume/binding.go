package persistentvolume

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// Annotations upstream's controller keeps on both sides of a binding.
const (
	AnnBindCompleted          = "pv.kubernetes.io/bind-completed"
	AnnBoundByController      = "pv.kubernetes.io/bound-by-controller"
	AnnSelectedNode           = "volume.kubernetes.io/selected-node"
	AnnStorageProvisioner     = "volume.kubernetes.io/storage-provisioner"
	AnnBetaStorageProvisioner = "volume.beta.kubernetes.io/storage-provisioner"
)

// ClaimClass is the class a claim asks for ("" for none).
func ClaimClass(c *corev1.PersistentVolumeClaim) string {
	if c.Spec.StorageClassName != nil {
		return *c.Spec.StorageClassName
	}
	return ""
}

func volumeMode(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

// BoundToClaim reports whether pv's claimRef names claim (a claimRef
// without UID is a pre-binding to whatever claim has that name).
func BoundToClaim(pv *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim) bool {
	r := pv.Spec.ClaimRef
	return r != nil && r.Namespace == claim.Namespace && r.Name == claim.Name && (r.UID == "" || r.UID == claim.UID)
}

// Mismatch says why pv cannot serve claim, "" when it can: class, volume
// mode, access modes (the volume's must include every mode asked for),
// capacity and the claim's selector. It ignores phase and claimRef.
func Mismatch(pv *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim) string {
	if pv.Spec.StorageClassName != ClaimClass(claim) {
		return "storageClassName does not match"
	}
	if volumeMode(pv.Spec.VolumeMode) != volumeMode(claim.Spec.VolumeMode) {
		return "incompatible volumeMode"
	}
	for _, want := range claim.Spec.AccessModes {
		found := false
		for _, have := range pv.Spec.AccessModes {
			if have == want {
				found = true
				break
			}
		}
		if !found {
			return "incompatible accessMode"
		}
	}
	req := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	have := pv.Spec.Capacity[corev1.ResourceStorage]
	if have.Cmp(req) < 0 {
		return "requested PV is too small"
	}
	if claim.Spec.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(claim.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pv.Labels)) {
			return "volume labels do not match the claim's selector"
		}
	}
	return ""
}

// FitsNode reports whether pv may be used on node (always, without node
// affinity).
func FitsNode(pv *corev1.PersistentVolume, node *corev1.Node) bool {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return true
	}
	ok, err := corev1helpers.MatchNodeSelectorTerms(node, pv.Spec.NodeAffinity.Required)
	return err == nil && ok
}

// FindBestMatch picks the volume for an unbound claim as upstream's
// findMatchingVolume: of the volumes that are not being deleted, are free
// (no claimRef) or pre-bound to this claim, and match it, a pre-bound one
// wins, else the smallest that fits. With node non-nil (delayed binding)
// the volume must also be usable on node.
func FindBestMatch(claim *corev1.PersistentVolumeClaim, volumes []*corev1.PersistentVolume, node *corev1.Node) *corev1.PersistentVolume {
	var fits []*corev1.PersistentVolume
	for _, pv := range volumes {
		if pv.DeletionTimestamp != nil {
			continue
		}
		prebound := BoundToClaim(pv, claim)
		if pv.Spec.ClaimRef != nil && !prebound {
			continue
		}
		if !prebound && pv.Status.Phase != corev1.VolumeAvailable && pv.Status.Phase != corev1.VolumePending && pv.Status.Phase != "" {
			continue
		}
		if Mismatch(pv, claim) != "" {
			continue
		}
		if node != nil && !FitsNode(pv, node) {
			continue
		}
		if prebound {
			return pv
		}
		fits = append(fits, pv)
	}
	if len(fits) == 0 {
		return nil
	}
	sort.Slice(fits, func(i, j int) bool {
		a, b := fits[i].Spec.Capacity[corev1.ResourceStorage], fits[j].Spec.Capacity[corev1.ResourceStorage]
		if c := a.Cmp(b); c != 0 {
			return c < 0
		}
		return fits[i].Name < fits[j].Name
	})
	return fits[0]
}
