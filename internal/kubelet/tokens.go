package kubelet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Upstream's refresh rule for projected tokens: a token is renewed once
// 80% of its lifetime passed or it is older than a day.
const (
	tokenMaxAge       = 24 * time.Hour
	tokenRefreshShare = 0.8
	// tokenJitter spreads renewals of tokens issued together.
	tokenJitter = 10 * time.Second
)

// tokenCache holds the bound tokens of projected serviceAccountToken
// sources, so that each pod sync reuses one until it is due. Its zero
// value is ready for use.
type tokenCache struct {
	mu      sync.Mutex
	entries map[tokenKey]*authenticationv1.TokenRequest
}

type tokenKey struct {
	podUID, serviceAccount, audience string
	seconds                          int64
}

// get returns a token for the pod and source, requesting a new one from
// the API (bound to the pod) when there is none or it is due.
func (c *tokenCache) get(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, now time.Time) (string, error) {
	secs := int64(3600)
	if src.ExpirationSeconds != nil {
		secs = *src.ExpirationSeconds
	}
	key := tokenKey{podUID: string(pod.UID), serviceAccount: pod.Spec.ServiceAccountName, audience: src.Audience, seconds: secs}
	c.mu.Lock()
	tr := c.entries[key]
	c.mu.Unlock()
	if tr != nil && !tokenDue(tr, now) {
		return tr.Status.Token, nil
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &secs,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	out, err := client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, req, metav1.CreateOptions{})
	if err != nil {
		if tr != nil && now.Before(tr.Status.ExpirationTimestamp.Time) {
			return tr.Status.Token, nil // still valid: keep it and retry on the next sync
		}
		return "", fmt.Errorf("failed to fetch token: %w", err)
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[tokenKey]*authenticationv1.TokenRequest{}
	}
	c.entries[key] = out
	c.mu.Unlock()
	return out.Status.Token, nil
}

// tokenDue applies the refresh rule to a cached TokenRequest.
func tokenDue(tr *authenticationv1.TokenRequest, now time.Time) bool {
	if tr.Spec.ExpirationSeconds == nil {
		return true
	}
	ttl := time.Duration(*tr.Spec.ExpirationSeconds) * time.Second
	exp := tr.Status.ExpirationTimestamp.Time
	iat := exp.Add(-ttl)
	jitter := time.Duration(rand.Float64() * float64(tokenJitter))
	if now.After(iat.Add(tokenMaxAge - jitter)) {
		return true
	}
	return now.After(iat.Add(time.Duration(float64(ttl)*tokenRefreshShare) - jitter))
}

// forget drops a removed pod's tokens.
func (c *tokenCache) forget(podUID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if k.podUID == podUID {
			delete(c.entries, k)
		}
	}
}

// prefetchTokens requests the pod's projected service account tokens in
// the background, so that the API round trip overlaps the sandbox's start
// instead of following it; the volume set-up then finds them cached (and
// reports any error itself). The returned func waits for the requests.
func (k *Kubelet) prefetchTokens(ctx context.Context, p *corev1.Pod) (wait func()) {
	var wg sync.WaitGroup
	for _, v := range p.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken == nil {
				continue
			}
			wg.Add(1)
			go func(src *corev1.ServiceAccountTokenProjection) {
				defer wg.Done()
				_, _ = k.tokens.get(ctx, k.cfg.Client, p, src, time.Now())
			}(s.ServiceAccountToken)
		}
	}
	return wg.Wait
}
