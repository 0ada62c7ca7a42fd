package apiserver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestMountAPIAccess(t *testing.T) {
	mounts := func(c corev1.Container) (n int, name string) {
		for _, m := range c.VolumeMounts {
			if m.MountPath == ServiceAccountMountPath {
				n++
				name = m.Name
				if !m.ReadOnly {
					t.Errorf("mount %+v not read-only", m)
				}
			}
		}
		return n, name
	}
	t.Run("every container and init container", func(t *testing.T) {
		pod := &corev1.Pod{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init"}},
			Containers:     []corev1.Container{{Name: "a"}, {Name: "b"}},
		}}
		mountAPIAccess(pod, "kube-api-access-abcde")
		if len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].Name != "kube-api-access-abcde" {
			t.Fatalf("volumes %+v", pod.Spec.Volumes)
		}
		p := pod.Spec.Volumes[0].Projected
		if p == nil || len(p.Sources) != 3 || p.Sources[0].ServiceAccountToken.Path != "token" ||
			*p.Sources[0].ServiceAccountToken.ExpirationSeconds != 3607 || p.Sources[1].ConfigMap.Name != "kube-root-ca.crt" ||
			p.Sources[1].ConfigMap.Items[0].Key != "ca.crt" || p.Sources[2].DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.namespace" ||
			*p.DefaultMode != 0o644 {
			t.Errorf("projected source %+v", p)
		}
		for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
			if n, name := mounts(c); n != 1 || name != "kube-api-access-abcde" {
				t.Errorf("container %s: %d mounts of %q", c.Name, n, name)
			}
		}
	})
	t.Run("own mount at the path is kept", func(t *testing.T) {
		own := corev1.VolumeMount{Name: "mine", MountPath: ServiceAccountMountPath, ReadOnly: true}
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", VolumeMounts: []corev1.VolumeMount{own}}}}}
		mountAPIAccess(pod, "kube-api-access-abcde")
		if len(pod.Spec.Volumes) != 0 || len(pod.Spec.Containers[0].VolumeMounts) != 1 {
			t.Errorf("pod changed: %+v", pod.Spec)
		}
	})
	t.Run("existing kube-api-access volume is reused", func(t *testing.T) {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{apiAccessVolume("kube-api-access-zzzzz")},
			Containers: []corev1.Container{{Name: "a"}}}}
		mountAPIAccess(pod, "kube-api-access-abcde")
		if len(pod.Spec.Volumes) != 1 {
			t.Errorf("volumes %+v", pod.Spec.Volumes)
		}
		if _, name := mounts(pod.Spec.Containers[0]); name != "kube-api-access-zzzzz" {
			t.Errorf("mounted %q", name)
		}
	})
}

func TestAutomount(t *testing.T) {
	f, tr := false, true
	cases := []struct {
		name    string
		pod, sa *bool
		want    bool
	}{
		{name: "default", want: true},
		{name: "sa off", sa: &f, want: false},
		{name: "pod off", pod: &f, want: false},
		{name: "pod on wins over sa off", pod: &tr, sa: &f, want: true},
		{name: "pod off wins over sa on", pod: &f, sa: &tr, want: false},
	}
	for _, tc := range cases {
		pod := &corev1.Pod{Spec: corev1.PodSpec{AutomountServiceAccountToken: tc.pod}}
		sa := &corev1.ServiceAccount{AutomountServiceAccountToken: tc.sa}
		if got := automount(sa, pod); got != tc.want {
			t.Errorf("%s: automount %v, want %v", tc.name, got, tc.want)
		}
	}
}
