package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/skiff-sh/skiff/internal/pki"
)

// writeNodeKubeconfig writes a kubeconfig for server with a self-signed
// certificate for cn valid for life.
func writeNodeKubeconfig(t *testing.T, dataDir, server, cn string, life time.Duration) {
	t.Helper()
	dir := filepath.Join(dataDir, "agent")
	os.MkdirAll(dir, 0o700)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(life)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath := filepath.Join(dir, ClientCertFile)
	os.WriteFile(certPath, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...), 0o600)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default"] = &clientcmdapi.Cluster{Server: server}
	kc.AuthInfos["default"] = &clientcmdapi.AuthInfo{ClientCertificate: certPath, ClientKey: certPath}
	kc.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: "default"}
	kc.CurrentContext = "default"
	if err := clientcmd.WriteToFile(*kc, KubeletKubeconfigPath(dataDir)); err != nil {
		t.Fatal(err)
	}
}

func TestReusable(t *testing.T) {
	const server = "https://10.0.0.1:6443"
	for _, tc := range []struct {
		name   string
		write  bool
		server string
		cn     string
		life   time.Duration
		ok     bool
		why    string
	}{
		{name: "no file"},
		{name: "valid", write: true, server: server, cn: "system:node:n1", life: 365 * 24 * time.Hour, ok: true},
		{name: "other node", write: true, server: server, cn: "system:node:n2", life: time.Hour * 48, why: "certificate is for"},
		{name: "other server", write: true, server: "https://10.0.0.2:6443", cn: "system:node:n1", life: time.Hour * 48, why: "is for server"},
		{name: "short-lived, renewed later", write: true, server: server, cn: "system:node:n1", life: time.Minute, ok: true},
		{name: "expiring", write: true, server: server, cn: "system:node:n1", life: 5 * time.Second, why: "expires"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.write {
				writeNodeKubeconfig(t, dir, tc.server, tc.cn, tc.life)
			}
			ok, why := reusable(KubeletKubeconfigPath(dir), server, "n1")
			if ok != tc.ok || !strings.Contains(why, tc.why) {
				t.Fatalf("reusable = %v, %q; want %v, %q", ok, why, tc.ok, tc.why)
			}
		})
	}
}

func TestJoinChecksTheCAHash(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cacerts" {
			http.NotFound(w, r)
			return
		}
		w.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvCert(t, r)}))
	}))
	defer srv.Close()
	tok := pki.NodeToken{CAHash: strings.Repeat("0", 64), Token: pki.BootstrapToken{ID: "abcdef", Secret: "0123456789abcdef"}}
	_, err := Join(context.Background(), JoinConfig{Server: srv.URL, Token: tok.String(), DataDir: t.TempDir(), NodeName: "n1"})
	if err == nil || !strings.Contains(err.Error(), "does not match the token's hash") {
		t.Fatalf("err %v, want a CA hash mismatch", err)
	}
	if _, err := Join(context.Background(), JoinConfig{Server: srv.URL, Token: "nonsense", DataDir: t.TempDir(), NodeName: "n1"}); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("err %v, want a --token error", err)
	}
	if _, err := Join(context.Background(), JoinConfig{Server: "http://x", Token: tok.String(), DataDir: t.TempDir(), NodeName: "n1"}); err == nil || !strings.Contains(err.Error(), "--server") {
		t.Fatalf("err %v, want a --server error", err)
	}
}

// srvCert returns the test server's own certificate (any PEM certificate
// does for the hash check).
func srvCert(t *testing.T, r *http.Request) []byte {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0].Raw
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	return der
}

func TestMigrateKubeconfig(t *testing.T) {
	dir := t.TempDir()
	writeNodeKubeconfig(t, dir, "https://10.0.0.1:6443", "system:node:n1", 48*time.Hour)
	// The layout of an earlier skiff: certificate and key apart.
	agentDir := filepath.Join(dir, "agent")
	data, _ := os.ReadFile(filepath.Join(agentDir, ClientCertFile))
	certEnd := strings.Index(string(data), "-----BEGIN EC PRIVATE KEY")
	os.WriteFile(filepath.Join(agentDir, "kubelet.crt"), data[:certEnd], 0o600)
	os.WriteFile(filepath.Join(agentDir, "kubelet.key"), data[certEnd:], 0o600)
	os.Remove(filepath.Join(agentDir, ClientCertFile))
	kc, _ := clientcmd.LoadFromFile(KubeletKubeconfigPath(dir))
	kc.AuthInfos["default"].ClientCertificate = filepath.Join(agentDir, "kubelet.crt")
	kc.AuthInfos["default"].ClientKey = filepath.Join(agentDir, "kubelet.key")
	clientcmd.WriteToFile(*kc, KubeletKubeconfigPath(dir))

	if err := migrateKubeconfig(KubeletKubeconfigPath(dir)); err != nil {
		t.Fatal(err)
	}
	kc, _ = clientcmd.LoadFromFile(KubeletKubeconfigPath(dir))
	want := filepath.Join(agentDir, ClientCertFile)
	if ai := kc.AuthInfos["default"]; ai.ClientCertificate != want || ai.ClientKey != want {
		t.Fatalf("kubeconfig user %+v, want both at %s", ai, want)
	}
	if c, err := loadCertAndKey(want); err != nil || c.Leaf.Subject.CommonName != "system:node:n1" {
		t.Fatalf("combined file: %v", err)
	}
	if ok, why := reusable(KubeletKubeconfigPath(dir), "https://10.0.0.1:6443", "n1"); !ok {
		t.Errorf("not reusable after migration: %s", why)
	}
	// Already migrated: nothing to do.
	if err := migrateKubeconfig(KubeletKubeconfigPath(dir)); err != nil {
		t.Error(err)
	}
}
