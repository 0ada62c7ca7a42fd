package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/skiff-sh/skiff/internal/pki"
)

// Files the join writes under <data-dir>/agent.
const (
	KubeletKubeconfigFile = "kubelet.kubeconfig"
	kubeletCertFile       = "kubelet.crt"
	kubeletKeyFile        = "kubelet.key"
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
// kubeconfig, certificate and key (0600).
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
	key, _, err := loadOrCreateKey(filepath.Join(dir, kubeletKeyFile))
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
	certPEM, err := requestCertificate(ctx, cs, key, cfg.NodeName, log)
	if err != nil {
		return "", err
	}
	certPath := filepath.Join(dir, kubeletCertFile)
	if err := pki.WriteSecretFile(certPath, certPEM); err != nil {
		return "", err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default"] = &clientcmdapi.Cluster{Server: cfg.Server, CertificateAuthorityData: caPEM}
	kc.AuthInfos["default"] = &clientcmdapi.AuthInfo{ClientCertificate: certPath, ClientKey: filepath.Join(dir, kubeletKeyFile)}
	kc.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: "default"}
	kc.CurrentContext = "default"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return "", fmt.Errorf("encode kubeconfig: %w", err)
	}
	if err := pki.WriteSecretFile(path, data); err != nil {
		return "", err
	}
	log.Info("joined the cluster", "node", cfg.NodeName, "kubeconfig", path)
	return path, nil
}

// reusable reports whether path holds a kubeconfig for server whose
// certificate names this node and is valid for at least another hour;
// otherwise why says what is wrong ("" when there is no file).
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
	if time.Until(cert.NotAfter) < time.Hour {
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
func loadOrCreateKey(path string) (*ecdsa.PrivateKey, []byte, error) {
	if data, err := os.ReadFile(path); err == nil {
		if block, _ := pem.Decode(data); block != nil {
			if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
				return k, data, nil
			}
		}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate node key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("encode node key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := pki.WriteSecretFile(path, data); err != nil {
		return nil, nil, err
	}
	return k, data, nil
}

// requestCertificate creates (or finds) this key's CSR and waits until it
// is issued, denied or failed.
func requestCertificate(ctx context.Context, cs kubernetes.Interface, key *ecdsa.PrivateKey, nodeName string, log *slog.Logger) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	// A name from the node and its key: `kubectl get csr` shows the node,
	// and a retry finds its own request.
	sum := sha256.Sum256(append(pub, nodeName...))
	name := "node-csr-" + nodeName + "-" + hex.EncodeToString(sum[:])[:16]
	if len(name) > 253 {
		name = "node-csr-" + hex.EncodeToString(sum[:])[:32]
	}
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}
	api := cs.CertificatesV1().CertificateSigningRequests()
	if _, err := api.Create(ctx, csr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		if apierrors.IsUnauthorized(err) {
			return nil, fmt.Errorf("join: %w: check --token", ErrTokenRejected)
		}
		return nil, fmt.Errorf("join: create certificate signing request: %w", err)
	}
	log.Info("created certificate signing request; waiting for approval and signing", "csr", name)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		cur, err := api.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsUnauthorized(err):
			return nil, fmt.Errorf("join: %w: check --token", ErrTokenRejected)
		case err == nil:
			for _, c := range cur.Status.Conditions {
				switch c.Type {
				case certificatesv1.CertificateDenied:
					return nil, fmt.Errorf("join: certificate signing request %s was denied: %s %s", name, c.Reason, c.Message)
				case certificatesv1.CertificateFailed:
					return nil, fmt.Errorf("join: certificate signing request %s failed: %s %s", name, c.Reason, c.Message)
				}
			}
			if len(cur.Status.Certificate) > 0 {
				return cur.Status.Certificate, nil
			}
		case !apierrors.IsNotFound(err):
			log.Debug("read certificate signing request", "csr", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("join: waiting for certificate signing request %s to be approved and issued: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}
