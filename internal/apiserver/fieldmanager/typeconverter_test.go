package fieldmanager

import (
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// entries is managedFields without the times, which differ between runs.
func entries(t *testing.T, obj runtime.Object) string {
	t.Helper()
	mf := obj.(metav1.Object).GetManagedFields()
	for i := range mf {
		mf[i].Time = nil
	}
	data, err := json.Marshal(mf)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func withGVK(obj runtime.Object) runtime.Object {
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil {
		panic(err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	return obj
}

// TestFastConverterMatchesValidating checks that the fast converter
// writes exactly the managedFields the validating one does, for creates
// (an empty live object) and updates, including lists with duplicate or
// defaulted keys.
func TestFastConverterMatchesValidating(t *testing.T) {
	slow := applyconfigurations.NewTypeConverter(scheme.Scheme)
	pod := func(mut func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", Labels: map[string]string{"app": "a"}, UID: "u",
				CreationTimestamp: metav1.Now()},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
				Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				Env:   []corev1.EnvVar{{Name: "A", Value: "1"}}}}},
		}
		if mut != nil {
			mut(p)
		}
		return p
	}
	cases := []struct {
		name      string
		sub       string
		live, obj runtime.Object
	}{
		{"pod create", "", &corev1.Pod{}, pod(nil)},
		{"pod create with status", "", &corev1.Pod{}, pod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning })},
		{"pod duplicate env", "", &corev1.Pod{}, pod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "A", Value: "2"})
		})},
		{"pod duplicate containers", "", &corev1.Pod{}, pod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0])
		})},
		{"pod update", "", pod(nil), pod(func(p *corev1.Pod) { p.Labels["b"] = "x"; p.Spec.Containers[0].Image = "other" })},
		{"pod status update", "status", pod(nil), pod(func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		})},
		{"configmap create", "", &corev1.ConfigMap{}, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v"}}},
		{"empty configmap", "", &corev1.ConfigMap{}, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}},
		{"service create", "", &corev1.Service{}, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}, {Port: 80, Protocol: corev1.ProtocolUDP}}}}},
		{"deployment create", "", &appsv1.Deployment{}, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "a"}}, Spec: pod(nil).Spec}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gvk := withGVK(tc.obj).GetObjectKind().GroupVersionKind()
			withGVK(tc.live)
			want, err := newWith(slow, scheme.Scheme, gvk, tc.sub)
			if err != nil {
				t.Fatal(err)
			}
			want.creates = nil // upstream's computation every time
			got, err := newWith(&fastConverter{inner: slow}, sameVersionConvertor{scheme.Scheme}, gvk, tc.sub)
			if err != nil {
				t.Fatal(err)
			}
			if tc.live.(metav1.Object).GetUID() != "" {
				// An update: the live object has managedFields of its own.
				empty, _ := scheme.Scheme.New(gvk)
				base, err := newWith(slow, scheme.Scheme, gvk, "")
				if err != nil {
					t.Fatal(err)
				}
				tc.live, _ = base.Update(withGVK(empty), tc.live, "creator")
			}
			// Twice: the first call of a kind takes the validating path and
			// fills the create cache, the second hits it.
			for i := 0; i < 2; i++ {
				w, _ := want.Update(tc.live.DeepCopyObject(), tc.obj.DeepCopyObject(), "m")
				g, _ := got.Update(tc.live.DeepCopyObject(), tc.obj.DeepCopyObject(), "m")
				if ws, gs := entries(t, w), entries(t, g); ws != gs {
					t.Fatalf("call %d: managedFields\n got %s\nwant %s", i, gs, ws)
				} else if i == 1 {
					t.Logf("%s", gs)
				}
			}
		})
	}
}

func BenchmarkPodCreateManagedFields(b *testing.B) {
	pod := withGVK(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", Labels: map[string]string{"app": "a"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
			Ports: []corev1.ContainerPort{{ContainerPort: 80}}, Env: []corev1.EnvVar{{Name: "A", Value: "1"}}}}},
	})
	gvk := pod.GetObjectKind().GroupVersionKind()
	slow := applyconfigurations.NewTypeConverter(scheme.Scheme)
	for _, name := range []string{"validating", "fast", "cached"} {
		b.Run(name, func(b *testing.B) {
			var tc managedfields.TypeConverter = slow
			var conv runtime.ObjectConvertor = scheme.Scheme
			if name != "validating" {
				tc, conv = &fastConverter{inner: slow}, sameVersionConvertor{scheme.Scheme}
			}
			fm, err := newWith(tc, conv, gvk, "")
			if err != nil {
				b.Fatal(err)
			}
			if name != "cached" {
				fm.creates = nil
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				fm.Update(withGVK(&corev1.Pod{}), pod.DeepCopyObject(), "m")
			}
		})
	}
}

func TestSameVersionConvertorNeverChangesItsInput(t *testing.T) {
	c := sameVersionConvertor{scheme.Scheme}
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	out, err := c.ConvertToVersion(bare, corev1.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	if out == runtime.Object(bare) || !bare.GetObjectKind().GroupVersionKind().Empty() {
		t.Fatalf("input changed or returned: %#v", bare.TypeMeta)
	}
	if gvk := out.GetObjectKind().GroupVersionKind(); gvk != corev1.SchemeGroupVersion.WithKind("Pod") || out.(*corev1.Pod).Name != "p" {
		t.Fatalf("converted: %v %v", gvk, out)
	}
	typed := withGVK(&corev1.Pod{})
	if out, _ := c.ConvertToVersion(typed, corev1.SchemeGroupVersion); out != typed {
		t.Fatalf("an object of the target version is returned as is")
	}
	// Other versions still convert through the scheme.
	if _, err := c.ConvertToVersion(bare, appsv1.SchemeGroupVersion); err == nil {
		t.Fatalf("a Pod has no apps/v1 kind")
	}
}
