package pki

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestBootstrapTokenFormat(t *testing.T) {
	tok, err := NewBootstrapToken()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`).MatchString(tok.String()) {
		t.Fatalf("token %q", tok)
	}
	if tok.SecretName() != "bootstrap-token-"+tok.ID {
		t.Errorf("secret name %q", tok.SecretName())
	}
	ca := []byte("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n")
	s := FormatNodeToken(ca, tok)
	if !strings.HasPrefix(s, "K10"+CAHash(ca)+"::") || len(CAHash(ca)) != 64 {
		t.Fatalf("node token %q", s)
	}
	nt, err := ParseNodeToken(s + "\n")
	if err != nil || nt.Token != tok || nt.CAHash != CAHash(ca) {
		t.Fatalf("parse %q: %+v %v", s, nt, err)
	}
}

func TestParseNodeToken(t *testing.T) {
	hash := strings.Repeat("a1", 32)
	for _, tc := range []struct {
		in      string
		ok      bool
		id, sec string
		hash    string
	}{
		{in: "abcdef.0123456789abcdef", ok: true, id: "abcdef", sec: "0123456789abcdef"},
		{in: "K10" + hash + "::abcdef.0123456789abcdef", ok: true, id: "abcdef", sec: "0123456789abcdef", hash: hash},
		{in: "K10" + hash + "abcdef.0123456789abcdef"},        // no ::
		{in: "K10" + hash[:10] + "::abcdef.0123456789abcdef"}, // short hash
		{in: "K10" + strings.ToUpper(hash) + "::abcdef.0123456789abcdef"},
		{in: "ABCDEF.0123456789abcdef"}, // upper case id
		{in: "abcde.0123456789abcdef"},  // short id
		{in: "abcdef.0123456789abcde"},  // short secret
		{in: "abcdef:0123456789abcdef"},
		{in: ""},
	} {
		nt, err := ParseNodeToken(tc.in)
		if !tc.ok {
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("%q: err %v, want ErrInvalidToken", tc.in, err)
			}
			continue
		}
		if err != nil || nt.Token.ID != tc.id || nt.Token.Secret != tc.sec || nt.CAHash != tc.hash {
			t.Errorf("%q: %+v %v", tc.in, nt, err)
		}
	}
}
