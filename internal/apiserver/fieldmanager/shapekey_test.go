package fieldmanager

import (
	"bytes"
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestProtoShapeTellsApartAsJSON: two pods have the same protobuf shape
// exactly when they have the same JSON form, nil and empty lists and maps
// included.
func TestProtoShapeTellsApartAsJSON(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
			Spec: corev1.PodSpec{
				Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{}}}}}}},
				Containers: []corev1.Container{{Name: "c", Image: "img"}},
			},
		}
	}
	variants := map[string]func(p *corev1.Pod){
		"base":                    func(p *corev1.Pod) {},
		"no containers":           func(p *corev1.Pod) { p.Spec.Containers = nil },
		"empty containers":        func(p *corev1.Pod) { p.Spec.Containers = []corev1.Container{} },
		"no projected sources":    func(p *corev1.Pod) { p.Spec.Volumes[0].Projected.Sources = nil },
		"empty projected sources": func(p *corev1.Pod) { p.Spec.Volumes[0].Projected.Sources = []corev1.VolumeProjection{} },
		"empty args":              func(p *corev1.Pod) { p.Spec.Containers[0].Args = []string{} },
		"empty labels":            func(p *corev1.Pod) { p.Labels = map[string]string{} },
		"no labels":               func(p *corev1.Pod) { p.Labels = nil },
		"another label":           func(p *corev1.Pod) { p.Labels = map[string]string{"app": "y"} },
		"a limit": func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("1")}
		},
		"the same limit, in milli": func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("1000m")}
		},
		"empty node selector terms": func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{}}}}
		},
		"no node selector terms": func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{}}}
		},
		"second container": func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "d"}) },
	}
	type enc struct{ json, shape []byte }
	encs := map[string]enc{}
	for name, f := range variants {
		p := base()
		f(p)
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := encodeShape(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(s, protoShapeMark) {
			t.Fatalf("%s: a pod's shape is not protobuf", name)
		}
		encs[name] = enc{j, s}
	}
	for a, ea := range encs {
		for b, eb := range encs {
			if sameJSON, sameShape := bytes.Equal(ea.json, eb.json), bytes.Equal(ea.shape, eb.shape); sameJSON != sameShape {
				t.Errorf("%q vs %q: same JSON %v, same shape %v", a, b, sameJSON, sameShape)
			}
		}
	}
}

// TestShapeKindsOutsideTheListStayJSON: an EndpointSlice (whose nil and
// empty endpoints differ in managedFields) keeps the JSON form.
func TestShapeKindsOutsideTheListStayJSON(t *testing.T) {
	for _, obj := range []runtime.Object{&discoveryv1.EndpointSlice{}, &corev1.ConfigMap{}} {
		s, err := encodeShape(obj)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(s, []byte("{")) {
			t.Errorf("%T: shape %q, want JSON", obj, s)
		}
	}
}

func TestGeneratedNameInProtobuf(t *testing.T) {
	pod := func(vols ...string) []byte {
		p := &corev1.Pod{}
		for _, v := range vols {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: v})
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: v}}})
		}
		s, err := encodeShape(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	withFields := func(data []byte, fields string) []byte {
		return append(append(append([]byte{}, data...), []byte(fields)...), 0)
	}
	for _, c := range []struct {
		data []byte
		want string
	}{
		{pod("kube-api-access-ab1cd"), "kube-api-access-ab1cd"},
		// A tag byte after the string that is a name character.
		{pod("kube-api-access-ab1cd", "b"), "kube-api-access-ab1cd"},
		{pod("kube-api-access-ab1cd", "kube-api-access-zz9zz"), ""},
		{pod("kube-api-access-*****"), ""},
		{pod("kube-api-access-AB"), ""},
		{pod("kube-api-access-abcdefghijklmnop"), "kube-api-access-abcdefghijklmnop"},
		{pod("x"), ""},
		// fieldsV1 inside the encoding: JSON with escaped quotes.
		{withFields(pod("kube-api-access-ab1cd"), `{"k:{\"name\":\"kube-api-access-ab1cd\"}":{}}`), "kube-api-access-ab1cd"},
		{withFields(pod("kube-api-access-ab1cd"), `{"k:{\"name\":\"kube-api-access-zz9zz\"}":{}}`), ""},
	} {
		if got := generatedName(c.data); got != c.want {
			t.Errorf("generatedName(%q) = %q, want %q", c.data, got, c.want)
		}
	}
}

func BenchmarkShapeOfPod(b *testing.B) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p-1", Namespace: "ns", Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "busybox", Command: []string{"sleep", "3600"},
				VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access-abcde", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
						Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}}}}}}},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: "Exists", Effect: "NoExecute"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort},
	}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("shape", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeShape(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
