package limitrange

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func rl(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func ranges(items ...corev1.LimitRangeItem) []corev1.LimitRange {
	return []corev1.LimitRange{{Spec: corev1.LimitRangeSpec{Limits: items}}}
}

func TestDefaultItems(t *testing.T) {
	lr := &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
		{Type: corev1.LimitTypeContainer, Max: rl("cpu", "2"), Min: rl("memory", "64Mi")},
		{Type: corev1.LimitTypePod, Max: rl("cpu", "4")},
	}}}
	DefaultItems(lr)
	c := lr.Spec.Limits[0]
	if d, r, m := c.Default["cpu"], c.DefaultRequest["cpu"], c.DefaultRequest["memory"]; d.String() != "2" || r.String() != "2" || m.String() != "64Mi" {
		t.Fatalf("container item: default %v, defaultRequest %v", c.Default, c.DefaultRequest)
	}
	if p := lr.Spec.Limits[1]; p.Default != nil || p.DefaultRequest != nil {
		t.Fatalf("pod items get no defaults: %+v", p)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		item corev1.LimitRangeItem
		want string // substring of the errors; "" for valid
	}{
		{"valid", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: rl("cpu", "100m"), DefaultRequest: rl("cpu", "200m"),
			Default: rl("cpu", "500m"), Max: rl("cpu", "1")}, ""},
		{"min over max", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: rl("cpu", "2"), Max: rl("cpu", "1")},
			"spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"},
		{"default over max", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Default: rl("memory", "2Gi"), Max: rl("memory", "1Gi")},
			"default value 2Gi is greater than max value 1Gi"},
		{"unknown type", corev1.LimitRangeItem{Type: "Node"}, "spec.limits[0].type: Unsupported value: \"Node\""},
		{"default on pod", corev1.LimitRangeItem{Type: corev1.LimitTypePod, Default: rl("cpu", "1")}, "spec.limits[0].default: Forbidden"},
		{"ratio under one", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: rl("cpu", "500m")},
			"ratio must be greater than or equal to 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := Validate(&corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{tc.item}}})
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs.ToAggregate())
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Fatalf("got %v, want %q", errs.ToAggregate(), tc.want)
			}
		})
	}
}

func TestApplyDefaultsAndCheck(t *testing.T) {
	lrs := ranges(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Default: rl("cpu", "500m", "memory", "256Mi"),
		DefaultRequest: rl("cpu", "100m"), Max: rl("memory", "1Gi"), Min: rl("cpu", "50m")})
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "app"},
		{Name: "own", Resources: corev1.ResourceRequirements{Requests: rl("cpu", "200m", "memory", "512Mi"), Limits: rl("cpu", "1", "memory", "512Mi")}},
	}}}
	note := ApplyDefaults(pod, lrs)
	// memory's default request falls back to the default limit.
	if want := "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app"; note != want {
		t.Fatalf("annotation %q, want %q", note, want)
	}
	app := pod.Spec.Containers[0].Resources
	if r, l, m := app.Requests["cpu"], app.Limits["cpu"], app.Requests["memory"]; r.String() != "100m" || l.String() != "500m" || m.String() != "256Mi" {
		t.Fatalf("app resources %+v", app)
	}
	if own := pod.Spec.Containers[1].Resources; own.Limits.Cpu().String() != "1" {
		t.Fatalf("set values must stay: %+v", own)
	}
	if errs := CheckPod(pod, lrs); len(errs) != 0 {
		t.Fatalf("defaulted pod must pass: %v", errs)
	}
	pod.Spec.Containers[1].Resources.Limits["memory"] = resource.MustParse("2Gi")
	pod.Spec.Containers[1].Resources.Requests["cpu"] = resource.MustParse("10m")
	got := strings.Join(CheckPod(pod, lrs), "|")
	for _, want := range []string{"minimum cpu usage per Container is 50m, but request is 10m", "maximum memory usage per Container is 1Gi, but limit is 2Gi"} {
		if !strings.Contains(got, want) {
			t.Fatalf("errors %q lack %q", got, want)
		}
	}
}

func TestPodAndClaimItems(t *testing.T) {
	lrs := ranges(corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: rl("cpu", "1"), MaxLimitRequestRatio: rl("memory", "2")},
		corev1.LimitRangeItem{Type: corev1.LimitTypePersistentVolumeClaim, Min: rl("storage", "1Gi"), Max: rl("storage", "10Gi")})
	c := func(cpu, reqMem, limMem string) corev1.Container {
		return corev1.Container{Resources: corev1.ResourceRequirements{Requests: rl("memory", reqMem), Limits: rl("cpu", cpu, "memory", limMem)}}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{c("600m", "100Mi", "100Mi"), c("600m", "100Mi", "400Mi")}}}
	got := strings.Join(CheckPod(pod, lrs), "|")
	for _, want := range []string{"maximum cpu usage per Pod is 1, but limit is 1200m", "memory max limit to request ratio per Pod is 2, but provided ratio is 2.500000"} {
		if !strings.Contains(got, want) {
			t.Fatalf("errors %q lack %q", got, want)
		}
	}
	claim := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "20Gi")}}}
	if got := CheckClaim(claim, lrs); len(got) != 1 || got[0] != "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi" {
		t.Fatalf("claim: %v", got)
	}
}
