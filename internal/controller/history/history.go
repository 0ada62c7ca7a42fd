package history

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/controller"
)

// HashLabel carries a revision's hash, as upstream labels it.
const HashLabel = "controller.kubernetes.io/hash"

// maxPrefix keeps <prefix>-<hash> a valid name (upstream's limit).
const maxPrefix = 223

// TemplatePatch is the revision data for a pod template.
func TemplatePatch(t *corev1.PodTemplateSpec) ([]byte, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode template: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode template: %w", err)
	}
	m["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": m}})
}

// Template decodes the pod template a revision stores.
func Template(cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var v struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &v); err != nil {
		return nil, fmt.Errorf("decode revision %s: %w", cr.Name, err)
	}
	return &v.Spec.Template, nil
}

// Hash hashes revision data with the owner's collision count.
func Hash(data []byte, collisionCount *int32) string {
	h := fnv.New32()
	h.Write(data)
	if collisionCount != nil {
		var buf [4]byte
		binary.LittleEndian.PutUint32(buf[:], uint32(*collisionCount))
		h.Write(buf[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// Name is <prefix>-<hash>, the prefix cut to keep the name valid.
func Name(prefix, hash string) string {
	if len(prefix) > maxPrefix {
		prefix = prefix[:maxPrefix]
	}
	return prefix + "-" + hash
}

// New builds (does not create) a revision of owner holding data, labelled
// with the template's labels so the owner's selector finds it.
func New(owner metav1.Object, kind schema.GroupVersionKind, templateLabels map[string]string, data []byte, revision int64, collisionCount *int32) *appsv1.ControllerRevision {
	labels := make(map[string]string, len(templateLabels)+1)
	for k, v := range templateLabels {
		labels[k] = v
	}
	hash := Hash(data, collisionCount)
	labels[HashLabel] = hash
	var annotations map[string]string
	if a := owner.GetAnnotations(); len(a) > 0 {
		annotations = make(map[string]string, len(a))
		for k, v := range a {
			annotations[k] = v
		}
	}
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: Name(owner.GetName(), hash), Namespace: owner.GetNamespace(), Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{*controller.NewControllerRef(owner, kind)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
}

// Sort orders revisions by revision number, then creation, then name.
func Sort(revs []*appsv1.ControllerRevision) {
	sort.SliceStable(revs, func(i, j int) bool {
		a, b := revs[i], revs[j]
		if a.Revision != b.Revision {
			return a.Revision < b.Revision
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// Max is the highest revision number, 0 for none.
func Max(revs []*appsv1.ControllerRevision) int64 {
	var m int64
	for _, r := range revs {
		m = max(m, r.Revision)
	}
	return m
}

// Equal reports revisions with the same data.
func Equal(a, b *appsv1.ControllerRevision) bool {
	return bytes.Equal(bytes.TrimSpace(a.Data.Raw), bytes.TrimSpace(b.Data.Raw))
}

// FindEqual returns the revisions equal to needle, in revs' order.
func FindEqual(revs []*appsv1.ControllerRevision, needle *appsv1.ControllerRevision) []*appsv1.ControllerRevision {
	var out []*appsv1.ControllerRevision
	for _, r := range revs {
		if Equal(r, needle) {
			out = append(out, r)
		}
	}
	return out
}

// Create creates rev under the name its data and *collisionCount give. A
// name taken by a revision with the same data and owner is that revision;
// taken by anything else, it is a collision: *collisionCount goes up and the
// next name is tried, as upstream.
func Create(ctx context.Context, cs kubernetes.Interface, owner metav1.Object, rev *appsv1.ControllerRevision, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	if collisionCount == nil {
		return nil, fmt.Errorf("create revision for %s: nil collision count", owner.GetName())
	}
	api := cs.AppsV1().ControllerRevisions(owner.GetNamespace())
	for {
		next := rev.DeepCopy()
		hash := Hash(next.Data.Raw, collisionCount)
		next.Name = Name(owner.GetName(), hash)
		next.Labels[HashLabel] = hash
		if _, ok := next.Labels[appsv1.ControllerRevisionHashLabelKey]; ok {
			next.Labels[appsv1.ControllerRevisionHashLabelKey] = hash // DaemonSet revisions carry it too
		}
		out, err := api.Create(ctx, next, metav1.CreateOptions{})
		if err == nil {
			return out, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create revision %s: %w", next.Name, err)
		}
		got, gerr := api.Get(ctx, next.Name, metav1.GetOptions{})
		if gerr != nil {
			return nil, fmt.Errorf("get revision %s: %w", next.Name, gerr)
		}
		if metav1.IsControlledBy(got, owner) && Equal(got, next) {
			return got, nil
		}
		*collisionCount++
	}
}

// Truncate deletes the oldest revisions not in live beyond limit.
func Truncate(ctx context.Context, cs kubernetes.Interface, revs []*appsv1.ControllerRevision, live map[string]bool, limit int32) error {
	var dead []*appsv1.ControllerRevision
	for _, r := range revs {
		if !live[r.Name] {
			dead = append(dead, r)
		}
	}
	if len(dead) <= int(limit) {
		return nil
	}
	Sort(dead)
	for _, r := range dead[:len(dead)-int(limit)] {
		err := cs.AppsV1().ControllerRevisions(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete revision %s: %w", r.Name, err)
		}
	}
	return nil
}
