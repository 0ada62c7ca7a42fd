package agent

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseNodeLabels(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags []string
		want  map[string]string
		err   string
	}{
		{"none", nil, nil, ""},
		{"repeated and comma lists", []string{"a=1,b=2", " c = 3 ", "a=4"}, map[string]string{"a": "4", "b": "2", "c": "3"}, ""},
		{"empty value", []string{"example.com/gpu="}, map[string]string{"example.com/gpu": ""}, ""},
		{"allowed kubelet namespaces", []string{"node.kubernetes.io/pool=a", "x.kubelet.kubernetes.io/y=b", "topology.kubernetes.io/zone=z1",
			"node.kubernetes.io/instance-type=m1", "kubernetes.io/hostname=h"},
			map[string]string{"node.kubernetes.io/pool": "a", "x.kubelet.kubernetes.io/y": "b", "topology.kubernetes.io/zone": "z1",
				"node.kubernetes.io/instance-type": "m1", "kubernetes.io/hostname": "h"}, ""},
		{"not kubernetes.io lookalike", []string{"notkubernetes.io/x=1"}, map[string]string{"notkubernetes.io/x": "1"}, ""},
		{"node-role is not self-assignable", []string{"node-role.kubernetes.io/control-plane=true"}, nil, "node-role.kubernetes.io/control-plane"},
		{"kubernetes.io namespace", []string{"kubernetes.io/foo=bar"}, nil, "unknown 'kubernetes.io' or 'k8s.io' labels kubernetes.io/foo"},
		{"k8s.io subdomain", []string{"a.k8s.io/b=c"}, nil, "a.k8s.io/b"},
		{"no equals", []string{"a"}, nil, `"a": want key=value`},
		{"bad key", []string{"a/b/c=1"}, nil, "invalid key"},
		{"bad value", []string{"a=b c"}, nil, "invalid value"},
	} {
		t.Run(tt.name, func(t *testing.T) { checkParse(t, ParseNodeLabels, tt.flags, tt.want, tt.err) })
	}
}

func TestParseNodeTaints(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags []string
		want  []corev1.Taint
		err   string
	}{
		{"none", nil, nil, ""},
		{"key value effect", []string{"dedicated=gpu:NoSchedule"}, []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}, ""},
		{"key only and lists", []string{"a:PreferNoSchedule,example.com/b=c:NoExecute"}, []corev1.Taint{
			{Key: "a", Effect: corev1.TaintEffectPreferNoSchedule}, {Key: "example.com/b", Value: "c", Effect: corev1.TaintEffectNoExecute}}, ""},
		{"same key two effects", []string{"k=v:NoSchedule", "k=v:NoExecute"}, []corev1.Taint{
			{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}, {Key: "k", Value: "v", Effect: corev1.TaintEffectNoExecute}}, ""},
		{"no effect", []string{"k=v"}, nil, "want key=value:Effect"},
		{"empty effect", []string{"k=v:"}, nil, `effect ""`},
		{"lowercase effect", []string{"k=v:noschedule"}, nil, `effect "noschedule"`},
		{"empty key", []string{"=v:NoSchedule"}, nil, "invalid key"},
		{"bad value", []string{"k=a b:NoSchedule"}, nil, "invalid value"},
		{"duplicate", []string{"k=a:NoSchedule", "k=b:NoSchedule"}, nil, "a second taint"},
	} {
		t.Run(tt.name, func(t *testing.T) { checkParse(t, ParseNodeTaints, tt.flags, tt.want, tt.err) })
	}
}

func TestParseRuntimeEndpoint(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"", "", ""},
		{"unix:///run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock", ""},
		{"/run/crio/crio.sock", "unix:///run/crio/crio.sock", ""},
		{"unix:///run//x/../c.sock", "unix:///run/c.sock", ""},
		{"tcp://127.0.0.1:1234", "", "only unix://"},
		{"npipe:////./pipe/x", "", "only unix://"},
		{"unix://", "", "absolute path"},
		{"run/c.sock", "", "absolute path"},
	} {
		got, err := ParseRuntimeEndpoint(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// checkParse runs a flag parser on one table row: an error containing
// wantErr if that is set, else want.
func checkParse[T any](t *testing.T, parse func([]string) (T, error), flags []string, want T, wantErr string) {
	t.Helper()
	got, err := parse(flags)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err %v, want one containing %q", err, wantErr)
		}
		return
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
}
