package fieldmanager

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/applyconfigurations"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

func TestGeneratedName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"name":"kube-api-access-ab1cd"}`, "kube-api-access-ab1cd"},
		{`{"v":"kube-api-access-ab1cd","m":"kube-api-access-ab1cd"}`, "kube-api-access-ab1cd"},
		{`{"k:{\"name\":\"kube-api-access-ab1cd\"}":{}}`, "kube-api-access-ab1cd"},
		{`{"v":"kube-api-access-ab1cd","w":"kube-api-access-zz9zz"}`, ""}, // two names
		{`{"v":"kube-api-access-*****"}`, ""},                             // the placeholder
		{`{"v":"kube-api-access-AB"}`, ""},                                // not a generated name
		{`{"v":"data"}`, ""},
	} {
		if got := generatedName([]byte(tc.in)); got != tc.want {
			t.Errorf("generatedName(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Pods that differ only in their token volume's generated name (as every
// pod the ServiceAccount admission saw) share cache entries, and each gets
// exactly upstream's managedFields with its own name: on create and on a
// status update.
func TestCachesRenameTokenVolume(t *testing.T) {
	gvk := corev1.SchemeGroupVersion.WithKind("Pod")
	upstream, err := newWith(applyconfigurations.NewTypeConverter(scheme.Scheme), scheme.Scheme, gvk, "")
	if err != nil {
		t.Fatal(err)
	}
	upstream.creates, upstream.updates = nil, nil
	upstreamStatus, err := newWith(applyconfigurations.NewTypeConverter(scheme.Scheme), scheme.Scheme, gvk, "status")
	if err != nil {
		t.Fatal(err)
	}
	upstreamStatus.creates, upstreamStatus.updates = nil, nil
	fm, err := New(gvk, "")
	if err != nil {
		t.Fatal(err)
	}
	fm.creates = &createCache{}
	status, err := New(gvk, "status")
	if err != nil {
		t.Fatal(err)
	}
	status.updates = &updateCache{}
	pod := func(name, vol string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), CreationTimestamp: metav1.Now()},
			Spec: corev1.PodSpec{
				// Names around the generated one, so that a wrong order of
				// keyed entries would show.
				Volumes: []corev1.Volume{{Name: "a"}, {Name: vol}, {Name: "kube-z"}},
				Containers: []corev1.Container{{Name: "c", Image: "img",
					VolumeMounts: []corev1.VolumeMount{{Name: vol, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}}},
			},
		}
	}
	for i, vol := range []string{"kube-api-access-abcde", "kube-api-access-00000", "kube-api-access-zzzzz", "kube-api-access-k1x2y"} {
		p := pod("p"+vol[len(vol)-5:], vol)
		key, ok := fm.creates.key(gvk, "", &corev1.Pod{}, p, "m")
		if !ok || key.rename != vol {
			t.Fatalf("%s: key %+v, %v", vol, key, ok)
		}
		if hit := fm.creates.apply(key, p.DeepCopy(), time.Now()); hit != (i > 0) {
			t.Fatalf("%s: create cache hit %v, want %v", vol, hit, i > 0)
		}
		got, _ := fm.Update(&corev1.Pod{}, p.DeepCopy(), "m")
		want, _ := upstream.Update(&corev1.Pod{}, p.DeepCopy(), "m")
		if g, w := entries(t, got.DeepCopyObject()), entries(t, want); g != w {
			t.Fatalf("%s create:\n got %s\nwant %s", vol, g, w)
		}
		// The scheduler's status write on the created pod.
		live := want.(*corev1.Pod)
		next := live.DeepCopy()
		next.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}
		ukey, ok := status.updates.key(gvk, "status", live, next, "sched")
		if !ok || ukey.rename != vol {
			t.Fatalf("%s: update key %+v, %v", vol, ukey, ok)
		}
		if hit := status.updates.apply(ukey, live, next.DeepCopy(), time.Now()); hit != (i > 0) {
			t.Fatalf("%s: update cache hit %v, want %v", vol, hit, i > 0)
		}
		gotU, _ := status.Update(live.DeepCopy(), next.DeepCopy(), "sched")
		wantU, _ := upstreamStatus.Update(live.DeepCopy(), next.DeepCopy(), "sched")
		if g, w := entries(t, gotU.DeepCopyObject()), entries(t, wantU); g != w {
			t.Fatalf("%s status update:\n got %s\nwant %s", vol, g, w)
		}
	}
}

func TestWithPlaceholder(t *testing.T) {
	tests := []struct{ data, name, want string }{
		{`{"name":"kube-api-access-ab1cd","v":"kube-api-access-ab1cd"}`, "kube-api-access-ab1cd", `{"name":"kube-api-access-*****","v":"kube-api-access-*****"}`},
		{`{"name":"kube-api-access-abc"}`, "kube-api-access-abc", `{"name":"kube-api-access-*****"}`},
		{`{"name":"other"}`, "kube-api-access-ab1cd", `{"name":"other"}`},
		{`{"name":"kube-api-access-ab1cd"}`, "", `{"name":"kube-api-access-ab1cd"}`},
	}
	for _, tc := range tests {
		if got := string(withPlaceholder([]byte(tc.data), tc.name)); got != tc.want {
			t.Errorf("withPlaceholder(%s, %q) = %s, want %s", tc.data, tc.name, got, tc.want)
		}
	}
}
