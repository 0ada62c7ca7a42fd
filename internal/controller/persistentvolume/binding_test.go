package persistentvolume

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
)

type pvb struct{ pv *corev1.PersistentVolume }

func mkPV(name, class, size string) pvb {
	return pvb{&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{StorageClassName: class,
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable}}}
}

func (b pvb) modes(m ...corev1.PersistentVolumeAccessMode) pvb { b.pv.Spec.AccessModes = m; return b }
func (b pvb) labels(l map[string]string) pvb                   { b.pv.Labels = l; return b }
func (b pvb) phase(p corev1.PersistentVolumePhase) pvb         { b.pv.Status.Phase = p; return b }
func (b pvb) block() pvb {
	m := corev1.PersistentVolumeBlock
	b.pv.Spec.VolumeMode = &m
	return b
}
func (b pvb) claimRef(ns, name, uid string) pvb {
	b.pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: ns, Name: name, UID: k8stypes.UID(uid)}
	return b
}
func (b pvb) onNode(host string) pvb {
	b.pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
		MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{host}}}}}}}
	return b
}

func mkClaim(class, size string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c", UID: "uid-c"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &class, AccessModes: modes,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}}}
}

func TestFindBestMatch(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelHostname: "n1"}}}
	withSelector := mkClaim("gold", "1Gi")
	withSelector.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "fast"}}
	for _, tc := range []struct {
		name    string
		claim   *corev1.PersistentVolumeClaim
		volumes []pvb
		node    *corev1.Node
		want    string
	}{
		{"none", mkClaim("gold", "1Gi"), nil, nil, ""},
		{"smallest that fits", mkClaim("gold", "2Gi"), []pvb{mkPV("a", "gold", "10Gi"), mkPV("b", "gold", "1Gi"), mkPV("c", "gold", "3Gi")}, nil, "c"},
		{"exact size", mkClaim("gold", "1Gi"), []pvb{mkPV("a", "gold", "2Gi"), mkPV("b", "gold", "1Gi")}, nil, "b"},
		{"class must be equal", mkClaim("gold", "1Gi"), []pvb{mkPV("a", "silver", "1Gi"), mkPV("b", "", "1Gi")}, nil, ""},
		{"empty class matches empty", mkClaim("", "1Gi"), []pvb{mkPV("a", "gold", "1Gi"), mkPV("b", "", "5Gi")}, nil, "b"},
		{"access modes must be a superset", mkClaim("gold", "1Gi", corev1.ReadWriteOnce, corev1.ReadOnlyMany),
			[]pvb{mkPV("a", "gold", "1Gi"), mkPV("b", "gold", "5Gi").modes(corev1.ReadOnlyMany, corev1.ReadWriteOnce, corev1.ReadWriteMany)}, nil, "b"},
		{"volume mode", mkClaim("gold", "1Gi"), []pvb{mkPV("a", "gold", "1Gi").block(), mkPV("b", "gold", "2Gi")}, nil, "b"},
		{"selector", withSelector, []pvb{mkPV("a", "gold", "1Gi"), mkPV("b", "gold", "2Gi").labels(map[string]string{"tier": "fast"})}, nil, "b"},
		{"bound elsewhere skipped", mkClaim("gold", "1Gi"), []pvb{mkPV("a", "gold", "1Gi").claimRef("ns", "other", "x"), mkPV("b", "gold", "2Gi")}, nil, "b"},
		{"released skipped", mkClaim("gold", "1Gi"), []pvb{mkPV("a", "gold", "1Gi").phase(corev1.VolumeReleased)}, nil, ""},
		{"pre-bound wins over a better fit", mkClaim("gold", "1Gi"), []pvb{mkPV("a", "gold", "1Gi"), mkPV("b", "gold", "5Gi").claimRef("ns", "c", "")}, nil, "b"},
		{"pre-bound must still fit", mkClaim("gold", "10Gi"), []pvb{mkPV("b", "gold", "5Gi").claimRef("ns", "c", "")}, nil, ""},
		{"node affinity on the selected node", mkClaim("gold", "1Gi"), []pvb{mkPV("a", "gold", "1Gi").onNode("n2"), mkPV("b", "gold", "2Gi").onNode("n1")}, node, "b"},
		{"no affinity fits any node", mkClaim("gold", "1Gi"), []pvb{mkPV("a", "gold", "1Gi")}, node, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vols []*corev1.PersistentVolume
			for _, b := range tc.volumes {
				vols = append(vols, b.pv)
			}
			got := FindBestMatch(tc.claim, vols, tc.node)
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tc.want {
				t.Fatalf("FindBestMatch = %q, want %q", name, tc.want)
			}
		})
	}
}
