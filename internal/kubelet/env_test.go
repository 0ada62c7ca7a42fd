package kubelet

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "B": "$(A)", "EMPTY": ""}
	mapping := func(n string) string {
		if v, ok := vars[n]; ok {
			return v
		}
		return "$(" + n + ")"
	}
	for in, want := range map[string]string{
		"":                 "",
		"plain":            "plain",
		"$(A)":             "a",
		"x$(A)y$(A)":       "xaya",
		"$(B)":             "$(A)", // values are not expanded twice
		"$$(A)":            "$(A)", // $$ escapes
		"$$$(A)":           "$a",
		"$(MISSING)":       "$(MISSING)",
		"$(EMPTY)x":        "x",
		"$(A":              "$(A",
		"$A":               "$A",
		"$":                "$",
		"a$":               "a$",
		"$()":              "$()",
		"$(A)$(MISSING)$$": "a$(MISSING)$",
	} {
		if got := expand(in, mapping); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMakeEnv(t *testing.T) {
	yes := true
	client := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"},
			Data: map[string]string{"color": "blue", "bad-key": "x", "size": "3"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "default"},
			Data: map[string][]byte{"password": []byte("s3cr3t")}},
	)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u1",
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "hi"}},
		Spec: corev1.PodSpec{ServiceAccountName: "sa"}}
	ec := &envContext{pod: pod, podIPs: []string{"10.1.0.5"}, hostIP: "192.168.0.2", nodeName: "n1",
		allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")}}
	cmKey := func(name, key string, optional bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: &optional}}
	}
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	res := func(r, divisor string) *corev1.EnvVarSource {
		s := &corev1.ResourceFieldSelector{Resource: r}
		if divisor != "" {
			s.Divisor = resource.MustParse(divisor)
		}
		return &corev1.EnvVarSource{ResourceFieldRef: s}
	}
	for _, tc := range []struct {
		name    string
		c       corev1.Container
		want    string // NAME=value lines, in order
		wantErr string
	}{
		{name: "values expand earlier vars", c: corev1.Container{Env: []corev1.EnvVar{
			{Name: "A", Value: "x"}, {Name: "B", Value: "$(A)-$(C)-$$(A)"}, {Name: "C", Value: "c"}}},
			want: "A=x B=x-$(C)-$(A) C=c"},
		{name: "configMapKeyRef and secretKeyRef", c: corev1.Container{Env: []corev1.EnvVar{
			{Name: "COLOR", ValueFrom: cmKey("cm", "color", false)},
			{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
			{Name: "BOTH", Value: "$(COLOR)/$(PW)"}}},
			want: "COLOR=blue PW=s3cr3t BOTH=blue/s3cr3t"},
		{name: "missing config map", c: corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: cmKey("nope", "k", false)}}},
			wantErr: `configmap "nope" not found`},
		{name: "missing key", c: corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: cmKey("cm", "nokey", false)}}},
			wantErr: "couldn't find key nokey in ConfigMap default/cm"},
		{name: "missing secret", c: corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}}}},
			wantErr: `secret "nope" not found`},
		{name: "optional missing is skipped", c: corev1.Container{Env: []corev1.EnvVar{
			{Name: "X", ValueFrom: cmKey("nope", "k", true)}, {Name: "Y", ValueFrom: cmKey("cm", "nokey", true)}, {Name: "Z", Value: "$(X)"}}},
			want: "Z=$(X)"},
		{name: "fieldRef", c: corev1.Container{Env: []corev1.EnvVar{
			{Name: "NAME", ValueFrom: field("metadata.name")}, {Name: "NS", ValueFrom: field("metadata.namespace")},
			{Name: "UID", ValueFrom: field("metadata.uid")}, {Name: "APP", ValueFrom: field("metadata.labels['app']")},
			{Name: "NOTE", ValueFrom: field("metadata.annotations['note']")}, {Name: "NODE", ValueFrom: field("spec.nodeName")},
			{Name: "SA", ValueFrom: field("spec.serviceAccountName")}, {Name: "IP", ValueFrom: field("status.podIP")},
			{Name: "IPS", ValueFrom: field("status.podIPs")}, {Name: "HOST", ValueFrom: field("status.hostIP")}}},
			want: "NAME=p NS=default UID=u1 APP=web NOTE=hi NODE=n1 SA=sa IP=10.1.0.5 IPS=10.1.0.5 HOST=192.168.0.2"},
		{name: "resourceFieldRef", c: corev1.Container{
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
			Env: []corev1.EnvVar{{Name: "MEM", ValueFrom: res("limits.memory", "1Mi")}, {Name: "CPU", ValueFrom: res("limits.cpu", "")},
				{Name: "REQ", ValueFrom: res("requests.cpu", "1")}, {Name: "REQM", ValueFrom: res("requests.cpu", "1m")}}},
			want: "MEM=64 CPU=2 REQ=1 REQM=250"},
		{name: "envFrom with prefix; env overrides", c: corev1.Container{
			EnvFrom: []corev1.EnvFromSource{
				{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: &yes}}},
			Env: []corev1.EnvVar{{Name: "CM_size", Value: "4"}, {Name: "E", Value: "$(password)"}}},
			want: "CM_bad-key=x CM_color=blue CM_size=4 password=s3cr3t E=s3cr3t"},
		{name: "envFrom missing", c: corev1.Container{EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}}}},
			wantErr: `configmap "nope" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := makeEnv(context.Background(), newObjects(client, "default"), ec, &tc.c)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range env.names {
				got = append(got, n+"="+env.vals[n])
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("env %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}
