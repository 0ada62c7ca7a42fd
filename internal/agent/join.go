package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/skiff-sh/skiff/internal/pki"
)

// Files the join writes under <data-dir>/agent (and ClientCertFile).
const (
	KubeletKubeconfigFile = "kubelet.kubeconfig"
	// joinKeyFile keeps the key of a pending join across attempts, so a
	// retried join finds the CSR it already created.
	joinKeyFile = "kubelet-client.key.pending"
)

// ErrTokenRejected means the API server answered 401 to the token.
var ErrTokenRejected = errors.New("the server rejected the join token (401 Unauthorized)")

// JoinConfig is what joining a cluster with a token needs.
type JoinConfig struct {
	// Server is the API server URL, https://HOST:PORT.
	Server string
	// Token is the node token: K10<ca sha256>::<id>.<secret> or a bare
	// bootstrap token <id>.<secret> (then the CA is taken on trust).
	Token    string
	DataDir  string
	NodeName string
	// Timeout bounds the wait for the certificate (default 5 minutes).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Validate rejects an unusable join config, naming the flag.
func (c *JoinConfig) Validate() error {
	if !strings.HasPrefix(c.Server, "https://") {
		return fmt.Errorf("--server %q: joining needs an https:// API server URL", c.Server)
	}
	if c.NodeName == "" {
		return errors.New("--node-name: empty")
	}
	if !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("--data-dir %q: must be an absolute path", c.DataDir)
	}
	return nil
}

// KubeletKubeconfigPath is where Join writes the node's kubeconfig.
func KubeletKubeconfigPath(dataDir string) string {
	return filepath.Join(dataDir, "agent", KubeletKubeconfigFile)
}

// Join returns a kubeconfig for this node, as the kubelet's TLS bootstrap
// does: a kubeconfig from an earlier join is re-used while its certificate
// is valid for this node and server; otherwise the agent fetches the CA
// from /cacerts (checked against the token's hash), creates a
// CertificateSigningRequest for CN=system:node:<name>, O=system:nodes as
// the bootstrap identity, waits for the certificate and writes the
// kubeconfig and ClientCertFile (certificate and key, 0600), which the
// ClientRotator renews later.
func Join(ctx context.Context, cfg JoinConfig) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Join(cfg.DataDir, "agent")
	path := KubeletKubeconfigPath(cfg.DataDir)
	if ok, why := reusable(path, cfg.Server, cfg.NodeName); ok {
		log.Info("re-using the node certificate from an earlier join", "kubeconfig", path)
		if err := migrateKubeconfig(path); err != nil {
			log.Warn("the node kubeconfig keeps its separate certificate and key files; they will not be rotated", "err", err)
		}
		return path, nil
	} else if why != "" {
		log.Info("joining again", "reason", why)
	}
	tok, err := pki.ParseNodeToken(cfg.Token)
	if err != nil {
		return "", fmt.Errorf("--token: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("join: %w", err)
	}
	caPEM, err := fetchCA(ctx, cfg.Server)
	if err != nil {
		return "", err
	}
	if tok.CAHash == "" {
		log.Warn("the token has no CA hash; trusting the CA the server presented", "server", cfg.Server)
	} else if got := pki.CAHash(caPEM); got != tok.CAHash {
		return "", fmt.Errorf("join: the CA bundle from %s/cacerts (sha256 %s) does not match the token's hash %s", cfg.Server, got, tok.CAHash)
	}
	keyPath := filepath.Join(dir, joinKeyFile)
	key, err := loadOrCreateKey(keyPath)
	if err != nil {
		return "", err
	}
	rc := &rest.Config{Host: cfg.Server, BearerToken: tok.Token.String(), UserAgent: "skiff-agent/join",
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return "", fmt.Errorf("join: %w", err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	certPEM, err := clientCertRequest(cfg.NodeName).request(ctx, cs, key, log)
	if err != nil {
		return "", fmt.Errorf("join: %w", err)
	}
	certPath := filepath.Join(dir, ClientCertFile)
	if err := writeCertAndKey(certPath, certPEM, key); err != nil {
		return "", err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default"] = &clientcmdapi.Cluster{Server: cfg.Server, CertificateAuthorityData: caPEM}
	// Both point at the one file: client-go re-reads it when the
	// ClientRotator replaces it.
	kc.AuthInfos["default"] = &clientcmdapi.AuthInfo{ClientCertificate: certPath, ClientKey: certPath}
	kc.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: "default"}
	kc.CurrentContext = "default"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return "", fmt.Errorf("encode kubeconfig: %w", err)
	}
	if err := pki.WriteSecretFile(path, data); err != nil {
		return "", err
	}
	os.Remove(keyPath)
	log.Info("joined the cluster", "node", cfg.NodeName, "kubeconfig", path)
	return path, nil
}

// reusable reports whether path holds a kubeconfig for server whose
// certificate names this node and has more than a tenth of its lifetime
// (or an hour) left, enough for the ClientRotator to renew it; otherwise
// why says what is wrong ("" when there is no file).
func reusable(path, server, nodeName string) (bool, string) {
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, ""
		}
		return false, fmt.Sprintf("read %s: %v", path, err)
	}
	rc, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	if err != nil {
		return false, fmt.Sprintf("%s: %v", path, err)
	}
	if strings.TrimSuffix(rc.Host, "/") != strings.TrimSuffix(server, "/") {
		return false, fmt.Sprintf("%s is for server %s", path, rc.Host)
	}
	certPEM := rc.CertData
	if len(certPEM) == 0 {
		if certPEM, err = os.ReadFile(rc.CertFile); err != nil {
			return false, fmt.Sprintf("read certificate: %v", err)
		}
	}
	if _, err := tls.LoadX509KeyPair(rc.CertFile, rc.KeyFile); err != nil && len(rc.CertData) == 0 {
		return false, fmt.Sprintf("certificate and key: %v", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false, "no certificate in the kubeconfig"
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false, fmt.Sprintf("parse certificate: %v", err)
	}
	if cert.Subject.CommonName != "system:node:"+nodeName {
		return false, fmt.Sprintf("certificate is for %q", cert.Subject.CommonName)
	}
	if left := time.Until(cert.NotAfter); left < min(time.Hour, cert.NotAfter.Sub(cert.NotBefore)/10) {
		return false, "certificate expires at " + cert.NotAfter.String()
	}
	return true, ""
}

// fetchCA reads the CA bundle from /cacerts without trusting the server
// yet; the caller checks it against the token's hash.
func fetchCA(ctx context.Context, server string) ([]byte, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		// The CA is what we are fetching; its hash is checked afterwards.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+"/cacerts", nil)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join: fetch CA from %s: %w", server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("join: fetch CA from %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("join: GET %s/cacerts: %s", server, resp.Status)
	}
	if p := x509.NewCertPool(); !p.AppendCertsFromPEM(body) {
		return nil, fmt.Errorf("join: %s/cacerts holds no PEM certificate", server)
	}
	return body, nil
}

// loadOrCreateKey keeps one key across attempts, so a retried join
// matches the CSR it already created.
func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	if data, err := os.ReadFile(path); err == nil {
		if block, _ := pem.Decode(data); block != nil {
			if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
				return k, nil
			}
		}
	}
	k, err := newKey()
	if err != nil {
		return nil, err
	}
	data, err := encodeKey(k)
	if err != nil {
		return nil, err
	}
	if err := pki.WriteSecretFile(path, data); err != nil {
		return nil, err
	}
	return k, nil
}

// clientCertRequest is the kubelet client certificate request of a node:
// CN=system:node:<name>, O=system:nodes, for the kube-apiserver-client-
// kubelet signer.
func clientCertRequest(nodeName string) certRequest {
	return certRequest{
		tmpl:   &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}}},
		signer: certificatesv1.KubeAPIServerClientKubeletSignerName,
		usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		prefix: "node-csr", node: nodeName,
	}
}

// migrateKubeconfig points a kubeconfig of an earlier skiff, whose
// certificate and key are separate files, at one ClientCertFile beside it,
// which the ClientRotator can replace in one rename.
func migrateKubeconfig(path string) error {
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return err
	}
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil || kc.AuthInfos[ctx.AuthInfo] == nil {
		return fmt.Errorf("%s: no user in the current context", path)
	}
	ai := kc.AuthInfos[ctx.AuthInfo]
	if ai.ClientCertificate == "" || ai.ClientCertificate == ai.ClientKey {
		return nil
	}
	certPEM, err := os.ReadFile(ai.ClientCertificate)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(ai.ClientKey)
	if err != nil {
		return err
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return err
	}
	combined := filepath.Join(filepath.Dir(path), ClientCertFile)
	if err := writeSecretAtomic(combined, append(append([]byte{}, certPEM...), keyPEM...)); err != nil {
		return err
	}
	ai.ClientCertificate, ai.ClientKey = combined, combined
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	return writeSecretAtomic(path, data)
}
