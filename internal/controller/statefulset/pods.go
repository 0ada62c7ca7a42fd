package statefulset

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/controller"
)

// ordinalStart is spec.ordinals.start (0 without it).
func ordinalStart(s *appsv1.StatefulSet) int {
	if s.Spec.Ordinals != nil {
		return int(s.Spec.Ordinals.Start)
	}
	return 0
}

func replicas(s *appsv1.StatefulSet) int {
	if s.Spec.Replicas == nil {
		return 1
	}
	return int(*s.Spec.Replicas)
}

// ordinalOf parses <set>-<ordinal>; ok is false for a pod not named so.
func ordinalOf(s *appsv1.StatefulSet, p *corev1.Pod) (int, bool) {
	rest, found := strings.CutPrefix(p.Name, s.Name+"-")
	if !found {
		return 0, false
	}
	ord, err := strconv.Atoi(rest)
	if err != nil || ord < 0 || strconv.Itoa(ord) != rest {
		return 0, false
	}
	return ord, true
}

func podName(s *appsv1.StatefulSet, ord int) string { return fmt.Sprintf("%s-%d", s.Name, ord) }

func claimName(s *appsv1.StatefulSet, tmpl string, ord int) string {
	return fmt.Sprintf("%s-%s-%d", tmpl, s.Name, ord)
}

func revisionOf(p *corev1.Pod) string { return p.Labels[appsv1.StatefulSetRevisionLabel] }

func isFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

func isRunningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && controller.IsPodReady(p)
}

func isHealthy(p *corev1.Pod, minReady int32, now time.Time) bool {
	return p != nil && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && controller.IsPodAvailable(p, minReady, now)
}

// newPod builds the pod of ordinal ord from template at revision rev: its
// stable name, hostname, identity labels and claims.
func newPod(s *appsv1.StatefulSet, tmpl *corev1.PodTemplateSpec, rev string, ord int) *corev1.Pod {
	pod := controller.GetPodFromTemplate(tmpl, s, controller.NewControllerRef(s, kind))
	pod.GenerateName = ""
	pod.Name = podName(s, ord)
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[appsv1.StatefulSetPodNameLabel] = pod.Name
	pod.Labels[appsv1.PodIndexLabel] = strconv.Itoa(ord)
	pod.Labels[appsv1.StatefulSetRevisionLabel] = rev
	pod.Spec.Hostname = pod.Name
	if s.Spec.ServiceName != "" {
		pod.Spec.Subdomain = s.Spec.ServiceName
	}
	// Each claim template replaces any template volume of the same name.
	byName := map[string]bool{}
	var vols []corev1.Volume
	for _, t := range s.Spec.VolumeClaimTemplates {
		byName[t.Name] = true
		vols = append(vols, corev1.Volume{Name: t.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(s, t.Name, ord)}}})
	}
	for _, v := range pod.Spec.Volumes {
		if !byName[v.Name] {
			vols = append(vols, v)
		}
	}
	pod.Spec.Volumes = vols
	return pod
}

func retention(s *appsv1.StatefulSet) appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy {
	p := appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
	}
	if r := s.Spec.PersistentVolumeClaimRetentionPolicy; r != nil {
		if r.WhenDeleted != "" {
			p.WhenDeleted = r.WhenDeleted
		}
		if r.WhenScaled != "" {
			p.WhenScaled = r.WhenScaled
		}
	}
	return p
}

func ownerRef(o metav1.Object, gvk string, k string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: gvk, Kind: k, Name: o.GetName(), UID: o.GetUID()}
}

// newClaim builds the claim of template t for ordinal ord. With
// whenDeleted=Delete the set owns it, so deleting the set deletes it.
func newClaim(s *appsv1.StatefulSet, t *corev1.PersistentVolumeClaim, ord int) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: claimName(s, t.Name, ord), Namespace: s.Namespace,
			Labels: map[string]string{}, Annotations: map[string]string{},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	for k, v := range t.Labels {
		pvc.Labels[k] = v
	}
	if s.Spec.Selector != nil {
		for k, v := range s.Spec.Selector.MatchLabels {
			pvc.Labels[k] = v
		}
	}
	for k, v := range t.Annotations {
		pvc.Annotations[k] = v
	}
	if retention(s).WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		pvc.OwnerReferences = []metav1.OwnerReference{ownerRef(s, kind.GroupVersion().String(), kind.Kind)}
	}
	return pvc
}

// createClaims creates the missing claims of ordinal ord. A claim that is
// being deleted blocks the pod until it is gone.
func (c *Controller) createClaims(ctx context.Context, s *appsv1.StatefulSet, ord int) error {
	for i := range s.Spec.VolumeClaimTemplates {
		t := &s.Spec.VolumeClaimTemplates[i]
		name := claimName(s, t.Name, ord)
		existing, err := c.pvcLister.PersistentVolumeClaims(s.Namespace).Get(name)
		if err == nil {
			if existing.DeletionTimestamp != nil {
				return fmt.Errorf("claim %s/%s is being deleted", s.Namespace, name)
			}
			continue
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		_, err = c.client.CoreV1().PersistentVolumeClaims(s.Namespace).Create(ctx, newClaim(s, t, ord), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			c.recorder.Eventf(s, corev1.EventTypeWarning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %v",
				name, podName(s, ord), s.Name, err)
			return fmt.Errorf("create claim %s: %w", name, err)
		}
		if err == nil {
			c.recorder.Eventf(s, corev1.EventTypeNormal, "SuccessfulCreate", "create Claim %s Pod %s in StatefulSet %s success",
				name, podName(s, ord), s.Name)
		}
	}
	return nil
}

// ownClaimsByPod makes a condemned pod the owner of its claims when the
// set's policy deletes claims on scale-down: the garbage collector removes
// them once the pod is gone, as upstream.
func (c *Controller) ownClaimsByPod(ctx context.Context, s *appsv1.StatefulSet, p *corev1.Pod, ord int) error {
	if retention(s).WhenScaled != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		return nil
	}
	for _, t := range s.Spec.VolumeClaimTemplates {
		name := claimName(s, t.Name, ord)
		pvc, err := c.pvcLister.PersistentVolumeClaims(s.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		refs := pvc.OwnerReferences
		owned := false
		for _, r := range refs {
			owned = owned || r.UID == p.UID
		}
		if owned {
			continue
		}
		refs = append(append([]metav1.OwnerReference(nil), refs...), ownerRef(p, "v1", "Pod"))
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"ownerReferences": refs, "uid": pvc.UID}})
		if err != nil {
			return err
		}
		_, err = c.client.CoreV1().PersistentVolumeClaims(s.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("set owner of claim %s: %w", name, err)
		}
	}
	return nil
}
