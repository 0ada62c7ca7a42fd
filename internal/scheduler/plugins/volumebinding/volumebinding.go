// Package volumebinding is upstream's VolumeBinding plugin, reduced to
// what skiff's volumes need: a pod's bound claims confine it to the nodes
// its volumes' node affinity allows; an unbound claim of an Immediate
// class makes it unschedulable; an unbound claim of a WaitForFirstConsumer
// class fits nodes where a free volume matches or its class provisions,
// and at PreBind the chosen node is written to the claim's
// volume.kubernetes.io/selected-node annotation for the persistentvolume
// controller. Unlike upstream, the scheduler does not bind claims to
// volumes itself nor wait for the binding; the kubelet waits for it.
package volumebinding

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/controller/persistentvolume"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "VolumeBinding"

// Upstream's reasons.
const (
	ErrUnboundImmediate    = "pod has unbound immediate PersistentVolumeClaims"
	ErrNodeConflict        = "node(s) had volume node affinity conflict"
	ErrBindConflict        = "node(s) didn't find available persistent volumes to bind"
	ErrBoundToMissingPV    = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
	noProvisioner          = "kubernetes.io/no-provisioner"
	stateKey               = "PreFilter" + Name
	selectedNodeAnnotation = persistentvolume.AnnSelectedNode
)

// VolumeBinding is the plugin.
type VolumeBinding struct{}

// state is what PreFilter found: the volumes the pod's bound claims use
// and its unbound claims of WaitForFirstConsumer classes.
type state struct {
	bound   []*corev1.PersistentVolume
	delayed []delayedClaim
}

type delayedClaim struct {
	claim *corev1.PersistentVolumeClaim
	class *storagev1.StorageClass
}

func (VolumeBinding) Name() string { return Name }

// ClaimName is the claim a pod volume uses: its persistentVolumeClaim or,
// for a generic ephemeral volume, <pod>-<volume>.
func ClaimName(pod *corev1.Pod, v *corev1.Volume) string {
	switch {
	case v.PersistentVolumeClaim != nil:
		return v.PersistentVolumeClaim.ClaimName
	case v.Ephemeral != nil:
		return pod.Name + "-" + v.Name
	}
	return ""
}

// classify looks up the pod's claims: an error status when the pod
// cannot be placed anywhere, else the state for Filter (nil: no claims).
func classify(pod *corev1.Pod, l framework.Listers) (*state, *framework.Status) {
	var st *state
	for i := range pod.Spec.Volumes {
		name := ClaimName(pod, &pod.Spec.Volumes[i])
		if name == "" {
			continue
		}
		if st == nil {
			st = &state{}
		}
		if l.Claims == nil {
			return nil, framework.NewStatus(framework.Error, "no claim lister")
		}
		claim, err := l.Claims.PersistentVolumeClaims(pod.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("persistentvolumeclaim %q not found", name))
		}
		if err != nil {
			return nil, framework.NewStatus(framework.Error, err.Error())
		}
		if claim.DeletionTimestamp != nil {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("persistentvolumeclaim %q is being deleted", name))
		}
		if claim.Spec.VolumeName != "" {
			pv, err := l.Volumes.Get(claim.Spec.VolumeName)
			if err != nil {
				return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrBoundToMissingPV)
			}
			st.bound = append(st.bound, pv)
			continue
		}
		var class *storagev1.StorageClass
		if cn := persistentvolume.ClaimClass(claim); cn != "" && l.StorageClasses != nil {
			class, _ = l.StorageClasses.Get(cn)
		}
		if class == nil || class.VolumeBindingMode == nil || *class.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrUnboundImmediate)
		}
		st.delayed = append(st.delayed, delayedClaim{claim: claim, class: class})
	}
	return st, nil
}

// PreFilter resolves the pod's claims; pods without claims skip the
// plugin.
func (VolumeBinding) PreFilter(_ context.Context, cs *framework.CycleState, pod *corev1.Pod, snap *framework.Snapshot) *framework.Status {
	st, status := classify(pod, snap.Listers)
	if status != nil {
		return status
	}
	if st == nil {
		return framework.NewStatus(framework.Skip)
	}
	var volumes []*corev1.PersistentVolume
	if len(st.delayed) > 0 && snap.Listers.Volumes != nil {
		volumes, _ = snap.Listers.Volumes.List(labels.Everything())
	}
	cs.Write(stateKey, &filterState{state: st, volumes: volumes})
	return nil
}

type filterState struct {
	*state
	volumes []*corev1.PersistentVolume // every volume, for delayed claims
}

// Filter checks the pod's volumes against node n.
func (VolumeBinding) Filter(_ context.Context, cs *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) *framework.Status {
	v, ok := cs.Read(stateKey)
	if !ok {
		return nil
	}
	fs := v.(*filterState)
	return fits(fs.state, fs.volumes, n.Node)
}

func fits(st *state, volumes []*corev1.PersistentVolume, node *corev1.Node) *framework.Status {
	for _, pv := range st.bound {
		if !persistentvolume.FitsNode(pv, node) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrNodeConflict)
		}
	}
	for _, d := range st.delayed {
		if sel := d.claim.Annotations[selectedNodeAnnotation]; sel != "" {
			if sel != node.Name {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrBindConflict)
			}
			continue
		}
		if persistentvolume.FindBestMatch(d.claim, volumes, node) != nil {
			continue
		}
		if d.class.Provisioner == noProvisioner || !allowedTopology(d.class, node) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrBindConflict)
		}
	}
	return nil
}

// allowedTopology reports whether class may provision on node.
func allowedTopology(class *storagev1.StorageClass, node *corev1.Node) bool {
	if len(class.AllowedTopologies) == 0 {
		return true
	}
	for _, term := range class.AllowedTopologies {
		ok := true
		for _, req := range term.MatchLabelExpressions {
			found := false
			for _, v := range req.Values {
				if node.Labels[req.Key] == v {
					found = true
					break
				}
			}
			ok = ok && found
		}
		if ok {
			return true
		}
	}
	return false
}

// PreBind writes the chosen node to the pod's unbound WaitForFirstConsumer
// claims, so the persistentvolume controller binds or provisions there.
func (VolumeBinding) PreBind(ctx context.Context, client kubernetes.Interface, l framework.Listers, pod *corev1.Pod, node string) *framework.Status {
	st, status := classify(pod, l)
	if status != nil {
		return status
	}
	if st == nil {
		return nil
	}
	for _, d := range st.delayed {
		if d.claim.Annotations[selectedNodeAnnotation] == node {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"annotations":     map[string]string{selectedNodeAnnotation: node},
			"resourceVersion": d.claim.ResourceVersion,
		}})
		_, err := client.CoreV1().PersistentVolumeClaims(d.claim.Namespace).Patch(ctx, d.claim.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return framework.NewStatus(framework.Error, fmt.Sprintf("set selected node on claim %s: %v", d.claim.Name, err))
		}
	}
	return nil
}

var (
	_ framework.PreFilterPlugin = VolumeBinding{}
	_ framework.PreBindPlugin   = VolumeBinding{}
)
