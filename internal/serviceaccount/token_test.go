package serviceaccount

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testIssuer(t *testing.T, now *time.Time) *Issuer {
	t.Helper()
	k, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "tls", KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{Name: "https://kubernetes.default.svc.cluster.local", Key: k, Now: func() time.Time { return *now }}
}

func TestKeyPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), KeyFile)
	a, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID != b.KeyID || !a.Private.Equal(b.Private) {
		t.Errorf("second load gave another key")
	}
}

func TestIssueClaims(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	iss := testIssuer(t, &now)
	tok, c, err := iss.Issue(Request{Namespace: "ns1", ServiceAccount: Ref{Name: "default", UID: "sa-uid"},
		Lifetime: time.Hour, Pod: &Ref{Name: "p", UID: "pod-uid"}, Node: &Ref{Name: "n1", UID: "node-uid"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "system:serviceaccount:ns1:default" || c.Expiry-c.IssuedAt != 3600 || c.NotBefore != c.IssuedAt || c.ID == "" {
		t.Errorf("claims %+v", c)
	}
	// The payload as a relying party sees it.
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	k8s := m["kubernetes.io"].(map[string]any)
	if m["iss"] != iss.Name || m["aud"].([]any)[0] != iss.Name || k8s["namespace"] != "ns1" ||
		k8s["serviceaccount"].(map[string]any)["uid"] != "sa-uid" || k8s["pod"].(map[string]any)["name"] != "p" ||
		k8s["node"].(map[string]any)["uid"] != "node-uid" || k8s["secret"] != nil {
		t.Errorf("payload %s", raw)
	}
	got, err := iss.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kubernetes.Pod.UID != "pod-uid" || got.Kubernetes.ServiceAccount.UID != "sa-uid" {
		t.Errorf("verified claims %+v", got)
	}
}

func TestExtendedExpiration(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	pod := &Ref{Name: "p", UID: "pod-uid"}
	for _, tc := range []struct {
		name     string
		extend   bool
		req      Request
		lifetime int64 // exp - iat
		warn     int64 // warnafter - iat, 0: no claim
	}{
		{"admission token", true, Request{Lifetime: WarnOnlyLifetime, Pod: pod}, 365 * 24 * 3600, 3607},
		{"admission token, API audience named", true, Request{Lifetime: WarnOnlyLifetime, Pod: pod, Audiences: []string{"other", "https://kubernetes.default.svc.cluster.local"}}, 365 * 24 * 3600, 3607},
		{"extension off", false, Request{Lifetime: WarnOnlyLifetime, Pod: pod}, 3607, 0},
		{"an hour", true, Request{Lifetime: time.Hour, Pod: pod}, 3600, 0},
		{"not bound to a pod", true, Request{Lifetime: WarnOnlyLifetime}, 3607, 0},
		{"another audience", true, Request{Lifetime: WarnOnlyLifetime, Pod: pod, Audiences: []string{"vault"}}, 3607, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := testIssuer(t, &now)
			iss.ExtendExpiration = tc.extend
			tc.req.Namespace, tc.req.ServiceAccount = "ns1", Ref{Name: "default", UID: "sa-uid"}
			tok, c, err := iss.Issue(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if c.Expiry-c.IssuedAt != tc.lifetime {
				t.Errorf("lifetime %d s, want %d", c.Expiry-c.IssuedAt, tc.lifetime)
			}
			switch w := c.Kubernetes.WarnAfter; {
			case tc.warn == 0 && w != nil:
				t.Errorf("warnafter %d, want none", *w)
			case tc.warn != 0 && (w == nil || *w-c.IssuedAt != tc.warn):
				t.Errorf("warnafter %v, want iat+%d", w, tc.warn)
			}
			// Valid past the hour when extended.
			now := now
			iss.Now = func() time.Time { return now.Add(2 * time.Hour) }
			if _, err := iss.VerifyFor(tok, c.Audience); (err == nil) != (tc.lifetime > 7200) {
				t.Errorf("verify two hours on: %v", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	iss := testIssuer(t, &now)
	issue := func(r Request) string {
		r.Namespace, r.ServiceAccount = "ns", Ref{Name: "sa", UID: "u"}
		if r.Lifetime == 0 {
			r.Lifetime = 10 * time.Minute
		}
		tok, _, err := iss.Issue(r)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	other := testIssuer(t, &now)
	otherName := *iss
	otherName.Name = "https://elsewhere"
	foreign, _, _ := otherName.Issue(Request{Namespace: "ns", ServiceAccount: Ref{Name: "sa"}, Lifetime: time.Hour})
	otherKey, _, _ := other.Issue(Request{Namespace: "ns", ServiceAccount: Ref{Name: "sa"}, Lifetime: time.Hour})
	good := issue(Request{})
	tampered := strings.Split(good, ".")
	tampered[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + iss.Name + `","sub":"system:serviceaccount:ns:admin"}`))

	cases := []struct {
		name  string
		tok   string
		after time.Duration
		want  error
	}{
		{name: "valid", tok: good},
		{name: "valid until just before exp", tok: good, after: 10*time.Minute - time.Second},
		{name: "expired", tok: good, after: 10 * time.Minute, want: ErrExpired},
		{name: "wrong audience", tok: issue(Request{Audiences: []string{"vault"}}), want: ErrAudience},
		{name: "one matching audience of several", tok: issue(Request{Audiences: []string{"vault", iss.Name}})},
		{name: "foreign issuer", tok: foreign, want: ErrIssuer},
		{name: "other key", tok: otherKey, want: ErrSignature},
		{name: "tampered payload", tok: strings.Join(tampered, "."), want: ErrSignature},
		{name: "not a jwt", tok: "abcdef.0123456789abcdef", want: ErrMalformed},
		{name: "garbage parts", tok: "a.b.c", want: ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			saved := now
			now = now.Add(tc.after)
			defer func() { now = saved }()
			_, err := iss.Verify(tc.tok)
			if !errors.Is(err, tc.want) {
				t.Errorf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestJWKS(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, err := NewKey(k)
	if err != nil {
		t.Fatal(err)
	}
	iss := &Issuer{Name: "https://issuer/", Key: key}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	b, _ := iss.JWKS()
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 1 || set.Keys[0]["kid"] != key.KeyID || set.Keys[0]["crv"] != "P-256" {
		t.Fatalf("jwks %s (%v)", b, err)
	}
	var cfg map[string]any
	b, _ = iss.OpenIDConfiguration()
	if err := json.Unmarshal(b, &cfg); err != nil || cfg["jwks_uri"] != "https://issuer/openid/v1/jwks" || cfg["issuer"] != "https://issuer/" {
		t.Errorf("openid configuration %s (%v)", b, err)
	}
	if _, err := NewKey(mustP384(t)); err == nil {
		t.Errorf("P-384 key accepted")
	}
}

func mustP384(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func BenchmarkIssueVerify(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := NewKey(k)
	iss := &Issuer{Name: "https://kubernetes.default.svc.cluster.local", Key: key}
	req := Request{Namespace: "ns", ServiceAccount: Ref{Name: "default", UID: "u"}, Lifetime: time.Hour, Pod: &Ref{Name: "p", UID: "pu"}}
	b.Run("issue", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := iss.Issue(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	tok, _, _ := iss.Issue(req)
	b.Run("verify", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := iss.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
