package kubelet

import (
	"context"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestTokenDue(t *testing.T) {
	iat := time.Unix(1_800_000_000, 0)
	tr := func(secs int64) *authenticationv1.TokenRequest {
		return &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs},
			Status: authenticationv1.TokenRequestStatus{ExpirationTimestamp: metav1.NewTime(iat.Add(time.Duration(secs) * time.Second))}}
	}
	cases := []struct {
		name string
		secs int64
		age  time.Duration
		want bool
	}{
		{"fresh hour token", 3600, time.Minute, false},
		{"at 70%", 3600, 42 * time.Minute, false},
		{"past 80%", 3600, 49 * time.Minute, true},
		{"year token within a day", 365 * 24 * 3600, 23 * time.Hour, false},
		{"year token past a day", 365 * 24 * 3600, 24*time.Hour + time.Second, true},
	}
	for _, tc := range cases {
		if got := tokenDue(tr(tc.secs), iat.Add(tc.age)); got != tc.want {
			t.Errorf("%s: due %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTokenCache(t *testing.T) {
	client := fake.NewClientset()
	var reqs []*authenticationv1.TokenRequest
	client.PrependReactor("create", "serviceaccounts", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := a.(clienttesting.CreateAction).GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		reqs = append(reqs, tr)
		tr.Status.Token = "tok" + string(rune('0'+len(reqs)))
		tr.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))
		return true, tr, nil
	})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"}, Spec: corev1.PodSpec{ServiceAccountName: "sa"}}
	secs := int64(3607)
	src := &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &secs}
	var c tokenCache
	ctx := context.Background()
	now := time.Now()
	a, err := c.get(ctx, client, pod, src, now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.get(ctx, client, pod, src, now.Add(time.Minute))
	if a != "tok1" || b != "tok1" || len(reqs) != 1 {
		t.Fatalf("tokens %q %q after %d requests; want one request", a, b, len(reqs))
	}
	r := reqs[0]
	if r.Spec.BoundObjectRef == nil || r.Spec.BoundObjectRef.Kind != "Pod" || r.Spec.BoundObjectRef.UID != "u1" ||
		*r.Spec.ExpirationSeconds != 3607 || len(r.Spec.Audiences) != 0 {
		t.Errorf("request %+v", r.Spec)
	}
	if c, _ := c.get(ctx, client, pod, src, now.Add(50*time.Minute)); c != "tok2" {
		t.Errorf("past 80%%: %q, want a new token", c)
	}
	aud := &corev1.ServiceAccountTokenProjection{Path: "vault", Audience: "vault", ExpirationSeconds: &secs}
	if v, _ := c.get(ctx, client, pod, aud, now); v != "tok3" || reqs[2].Spec.Audiences[0] != "vault" {
		t.Errorf("audience token %q, request %+v", v, reqs[2].Spec)
	}
	c.forget("u1")
	if len(c.entries) != 0 {
		t.Errorf("entries left after forget: %d", len(c.entries))
	}
}

func TestServiceEnv(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.1",
		Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}}}
	got := map[string]string{}
	for _, e := range serviceEnv(svc) {
		got[e.Name] = e.Value
	}
	want := map[string]string{
		"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT": "tcp://10.43.0.1:443", "KUBERNETES_PORT_443_TCP": "tcp://10.43.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO": "tcp", "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.43.0.1",
	}
	if len(got) != len(want) {
		t.Errorf("env %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
	if env := serviceEnv(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "h"}, Spec: corev1.ServiceSpec{ClusterIP: "None",
		Ports: []corev1.ServicePort{{Port: 80}}}}); env != nil {
		t.Errorf("headless service env %v", env)
	}
}

// TestPrefetchTokens checks that the tokens fetched beside the sandbox's
// start are the ones the volume set-up then uses: one request per source.
func TestPrefetchTokens(t *testing.T) {
	client := fake.NewClientset()
	reqs := 0
	client.PrependReactor("create", "serviceaccounts", func(a clienttesting.Action) (bool, runtime.Object, error) {
		tr := a.(clienttesting.CreateAction).GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		reqs++
		tr.Status.Token = "tok"
		tr.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))
		return true, tr, nil
	})
	k := testKubelet()
	k.cfg.Client = client
	secs := int64(3607)
	src := &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &secs}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"}, Spec: corev1.PodSpec{
		ServiceAccountName: "sa",
		Volumes: []corev1.Volume{{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: src}}}}}, {Name: "empty", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}}
	ctx := context.Background()
	k.prefetchTokens(ctx, pod)()
	if reqs != 1 {
		t.Fatalf("prefetch sent %d token requests, want 1", reqs)
	}
	tok, err := k.tokens.get(ctx, client, pod, src, time.Now())
	if err != nil || tok != "tok" || reqs != 1 {
		t.Errorf("volume set-up after prefetch: %q %v, %d requests (want the cached token, 1 request)", tok, err, reqs)
	}
	// A pod without token sources sends nothing.
	k.prefetchTokens(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u2"}})()
	if reqs != 1 {
		t.Errorf("pod without tokens: %d requests", reqs)
	}
}
