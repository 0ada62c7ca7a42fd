package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func validSpec() corev1.PodSpec {
	return corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst,
		Containers: []corev1.Container{{Name: "c", Image: "i"}}}
}

func TestValidatePodSpec(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*corev1.PodSpec)
		want   map[string]field.ErrorType // field path -> error type
	}{
		{"valid", func(*corev1.PodSpec) {}, nil},
		{"no containers", func(s *corev1.PodSpec) { s.Containers = nil }, map[string]field.ErrorType{"spec.containers": field.ErrorTypeRequired}},
		{"no image", func(s *corev1.PodSpec) { s.Containers[0].Image = "" }, map[string]field.ErrorType{"spec.containers[0].image": field.ErrorTypeRequired}},
		{"bad container name", func(s *corev1.PodSpec) { s.Containers[0].Name = "Bad_Name" }, map[string]field.ErrorType{"spec.containers[0].name": field.ErrorTypeInvalid}},
		{"duplicate names", func(s *corev1.PodSpec) { s.Containers = append(s.Containers, s.Containers[0]) }, map[string]field.ErrorType{"spec.containers[1].name": field.ErrorTypeDuplicate}},
		{"bad restart policy", func(s *corev1.PodSpec) { s.RestartPolicy = "Sometimes" }, map[string]field.ErrorType{"spec.restartPolicy": field.ErrorTypeNotSupported}},
		{"port out of range", func(s *corev1.PodSpec) { s.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000}} }, map[string]field.ErrorType{"spec.containers[0].ports[0].containerPort": field.ErrorTypeInvalid}},
		{"mount of a missing volume", func(s *corev1.PodSpec) {
			s.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}
		}, map[string]field.ErrorType{"spec.containers[0].volumeMounts[0].name": field.ErrorTypeNotFound}},
		{"duplicate volumes", func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}, {Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, map[string]field.ErrorType{"spec.volumes[1].name": field.ErrorTypeDuplicate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec()
			tt.mutate(&spec)
			errs := ValidatePodSpec(&spec, field.NewPath("spec"))
			got := map[string]field.ErrorType{}
			for _, e := range errs {
				got[e.Field] = e.Type
			}
			if len(got) != len(tt.want) {
				t.Fatalf("errors %v, want %v", errs, tt.want)
			}
			for f, typ := range tt.want {
				if got[f] != typ {
					t.Errorf("%s: %s, want %s (all: %v)", f, got[f], typ, errs)
				}
			}
		})
	}
}

func TestValidatePodSpecUpdate(t *testing.T) {
	old := validSpec()
	img := validSpec()
	img.Containers[0].Image = "new"
	if errs := ValidatePodSpecUpdate(&img, &old, field.NewPath("spec")); len(errs) != 0 {
		t.Errorf("image change refused: %v", errs)
	}
	node := validSpec()
	node.NodeName = "n1"
	if errs := ValidatePodSpecUpdate(&node, &old, field.NewPath("spec")); len(errs) != 1 || errs[0].Type != field.ErrorTypeForbidden {
		t.Errorf("nodeName change: %v, want Forbidden", errs)
	}
}

func TestValidateSelectorMatchesTemplate(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}
	p := field.NewPath("spec", "selector")
	lp := field.NewPath("spec", "template", "metadata", "labels")
	if errs := ValidateSelectorMatchesTemplate(sel, map[string]string{"app": "a", "x": "y"}, p, lp); len(errs) != 0 {
		t.Errorf("matching selector: %v", errs)
	}
	errs := ValidateSelectorMatchesTemplate(sel, map[string]string{"app": "b"}, p, lp)
	if len(errs) != 1 || errs[0].Field != "spec.template.metadata.labels" {
		t.Errorf("mismatch: %v", errs)
	}
	if errs := ValidateSelectorMatchesTemplate(nil, nil, p, lp); len(errs) != 1 || errs[0].Type != field.ErrorTypeRequired {
		t.Errorf("missing selector: %v", errs)
	}
}
