package localpath

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	// Provisioner is the provisioner name K3s's local-path uses.
	Provisioner = "rancher.io/local-path"
	// ClassName is the default StorageClass skiff creates.
	ClassName = "local-path"
	// DirAnnotation on a Node names the directory its local-path volumes
	// live in; the agent sets it to <data-dir>/storage.
	DirAnnotation = "skiff.sh/local-path-dir"
	// DefaultDir is used for nodes without DirAnnotation.
	DefaultDir = "/var/lib/skiff/storage"
	// Finalizer keeps a deleted local-path PersistentVolume until its
	// node has removed the directory.
	Finalizer = "skiff.sh/local-path-cleanup"
	// ProvisionedByAnnotation is upstream's record of who made a volume.
	ProvisionedByAnnotation = "pv.kubernetes.io/provisioned-by"
	// SelectedNodeAnnotation is the scheduler's choice of node for a
	// WaitForFirstConsumer claim.
	SelectedNodeAnnotation = "volume.kubernetes.io/selected-node"
	isDefaultAnnotation    = "storageclass.kubernetes.io/is-default-class"
)

// EnsureStorageClass creates the default local-path StorageClass unless a
// class of that name exists (an administrator's edit is kept).
func EnsureStorageClass(ctx context.Context, cs kubernetes.Interface) error {
	reclaim := corev1.PersistentVolumeReclaimDelete
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	sc := &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: ClassName, Annotations: map[string]string{isDefaultAnnotation: "true"}},
		Provisioner: Provisioner, ReclaimPolicy: &reclaim, VolumeBindingMode: &mode,
	}
	if _, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create storage class %s: %w", ClassName, err)
	}
	return nil
}

// Dir is the local-path directory of node.
func Dir(node *corev1.Node) string {
	if d := node.Annotations[DirAnnotation]; d != "" && filepath.IsAbs(d) {
		return filepath.Clean(d)
	}
	return DefaultDir
}

// VolumeName is the name of the volume provisioned for claim, as upstream
// names provisioned volumes.
func VolumeName(claim *corev1.PersistentVolumeClaim) string { return "pvc-" + string(claim.UID) }

// Provision builds the PersistentVolume for claim on node, pre-bound to
// the claim: a hostPath DirectoryOrCreate at <dir>/pvc-<uid>_<ns>_<name>
// that only node can use.
func Provision(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, node *corev1.Node) (*corev1.PersistentVolume, error) {
	if claim.Spec.VolumeMode != nil && *claim.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		return nil, fmt.Errorf("local-path provisioner does not support block volumes")
	}
	for _, m := range claim.Spec.AccessModes {
		if m != corev1.ReadWriteOnce && m != corev1.ReadWriteOncePod {
			return nil, fmt.Errorf("NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes")
		}
	}
	size, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		size = resource.MustParse("0")
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	name := VolumeName(claim)
	path := filepath.Join(Dir(node), name+"_"+claim.Namespace+"_"+claim.Name)
	typ := corev1.HostPathDirectoryOrCreate
	fs := corev1.PersistentVolumeFilesystem
	host := node.Labels[corev1.LabelHostname]
	term := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node.Name}}}}
	if host != "" {
		term = corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{host}}}}
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Annotations: map[string]string{ProvisionedByAnnotation: Provisioner, "local.path.provisioner/selected-node": node.Name},
			Finalizers:  []string{Finalizer}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   claim.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			VolumeMode:                    &fs,
			MountOptions:                  class.MountOptions,
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &typ},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{term}}},
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: claim.Namespace,
				Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion},
		},
	}
	return pv, nil
}

// IsLocalPath reports whether pv was made by this provisioner.
func IsLocalPath(pv *corev1.PersistentVolume) bool {
	return pv.Annotations[ProvisionedByAnnotation] == Provisioner
}

// OwnedDir returns the directory of a local-path volume when it lies
// directly in dir (the node's local-path directory), so that a node never
// removes anything else.
func OwnedDir(pv *corev1.PersistentVolume, dir string) (string, bool) {
	if !IsLocalPath(pv) || pv.Spec.HostPath == nil {
		return "", false
	}
	p := filepath.Clean(pv.Spec.HostPath.Path)
	if filepath.Dir(p) != filepath.Clean(dir) || !strings.HasPrefix(filepath.Base(p), "pvc-") {
		return "", false
	}
	return p, true
}
