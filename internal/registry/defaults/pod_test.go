package defaults

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPodSpecDefaults(t *testing.T) {
	spec := &corev1.PodSpec{
		Containers: []corev1.Container{{
			Name: "c", Image: "nginx",
			Ports:          []corev1.ContainerPort{{ContainerPort: 80}},
			Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}},
		}},
		Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}, {Name: "none"}},
	}
	PodSpec(spec)
	c := spec.Containers[0]
	checks := map[string]bool{
		"restartPolicy":                 spec.RestartPolicy == corev1.RestartPolicyAlways,
		"dnsPolicy":                     spec.DNSPolicy == corev1.DNSClusterFirst,
		"schedulerName":                 spec.SchedulerName == "default-scheduler",
		"terminationGracePeriodSeconds": *spec.TerminationGracePeriodSeconds == 30,
		"securityContext":               spec.SecurityContext != nil,
		"enableServiceLinks":            *spec.EnableServiceLinks,
		"imagePullPolicy untagged":      c.ImagePullPolicy == corev1.PullAlways,
		"terminationMessagePath":        c.TerminationMessagePath == "/dev/termination-log",
		"terminationMessagePolicy":      c.TerminationMessagePolicy == corev1.TerminationMessageReadFile,
		"port protocol":                 c.Ports[0].Protocol == corev1.ProtocolTCP,
		"requests from limits":          c.Resources.Requests.Cpu().String() == "1",
		"probe period":                  c.ReadinessProbe.PeriodSeconds == 10 && c.ReadinessProbe.TimeoutSeconds == 1 && c.ReadinessProbe.FailureThreshold == 3,
		"probe http path":               c.ReadinessProbe.HTTPGet.Path == "/" && c.ReadinessProbe.HTTPGet.Scheme == corev1.URISchemeHTTP,
		"configMap defaultMode":         *spec.Volumes[0].ConfigMap.DefaultMode == 0o644,
		"sourceless volume is emptyDir": spec.Volumes[1].EmptyDir != nil,
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("%s not defaulted as upstream", name)
		}
	}
}

func TestPullPolicyFor(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx":                 corev1.PullAlways,
		"nginx:latest":          corev1.PullAlways,
		"nginx:1.25":            corev1.PullIfNotPresent,
		"registry:5000/nginx":   corev1.PullAlways,
		"registry:5000/x:1":     corev1.PullIfNotPresent,
		"nginx@sha256:abcdef01": corev1.PullIfNotPresent,
	} {
		if got := PullPolicyFor(image); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}

func TestServiceDefaults(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 8080}}}}
	Service(svc)
	if svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP || svc.Spec.Ports[0].TargetPort != intstr.FromInt32(8080) ||
		svc.Spec.SessionAffinity != corev1.ServiceAffinityNone || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster ||
		*svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack || *svc.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster {
		t.Errorf("service defaults: %+v", svc.Spec)
	}
}
