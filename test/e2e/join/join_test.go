package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

var nodeTokenRE = regexp.MustCompile(`^K10([0-9a-f]{64})::([a-z0-9]{6})\.([a-z0-9]{16})$`)

func TestJoinWithToken(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	cidr := fmt.Sprintf("10.%d.0.0/16", 200+(n*7+3)%50)
	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 8*time.Minute)

	// The node token: mode 0600, K10<sha256 of the CA>::<id>.<secret>, and
	// its Secret in kube-system.
	tokenPath := filepath.Join(srv.DataDir, "node-token")
	st, err := os.Stat(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("node-token mode %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(tokenPath)
	token := strings.TrimSpace(string(raw))
	m := nodeTokenRE.FindStringSubmatch(token)
	if m == nil {
		t.Fatalf("node-token %q is not K10<hash>::<id>.<secret>", token)
	}
	caPEM, err := os.ReadFile(filepath.Join(srv.DataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(caPEM); hex.EncodeToString(sum[:]) != m[1] {
		t.Errorf("token hash %s is not the CA's sha256", m[1])
	}
	id, secret := m[2], m[3]
	sec, err := cs.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-"+id, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != "bootstrap.kubernetes.io/token" || string(sec.Data["token-secret"]) != secret ||
		string(sec.Data["usage-bootstrap-authentication"]) != "true" || string(sec.Data["usage-bootstrap-signing"]) != "true" {
		t.Errorf("bootstrap token secret: type %s, data keys %v", sec.Type, keys(sec.Data))
	}

	// /cacerts is served to anyone and is the CA bundle.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}}
	resp, err := anon.Get(srv.URL() + "/cacerts")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != string(caPEM) {
		t.Errorf("/cacerts: %d %q", resp.StatusCode, body)
	}

	// The bootstrap identity may read and create CSRs, nothing else.
	bootCS := bearerClient(t, srv, caPEM, id+"."+secret)
	_, err = bootCS.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), fmt.Sprintf(`User "system:bootstrap:%s" cannot list resource "pods" in API group "" in the namespace "default"`, id)) {
		t.Errorf("bootstrap token listing pods: %v, want 403 Forbidden", err)
	}
	if _, err := bootCS.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("bootstrap token listing CSRs: %v", err)
	}
	if _, err := bearerClient(t, srv, caPEM, id+".0000000000000000").CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("wrong secret: %v, want 401", err)
	}

	// A wrong token: the agent exits with a message naming the problem.
	bad := "K10" + m[1] + "::" + id + ".0123456789abcdef"
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	out, err := exec.CommandContext(wctx, framework.Binary(t), "agent", "--server", srv.URL(), "--token", bad,
		"--data-dir", t.TempDir(), "--node-name", "wrong-token").CombinedOutput()
	cancel()
	if err == nil || !strings.Contains(string(out), "401 Unauthorized") || !strings.Contains(string(out), "token") {
		t.Errorf("agent with a wrong token: %v\n%s", err, out)
	} else {
		t.Logf("wrong token: %s", lastLine(string(out)))
	}

	// Join: the node registers and becomes Ready, a pod runs.
	const node = "join-e2e"
	bridge := fmt.Sprintf("skj%d", n%100000)
	begin := time.Now()
	a := framework.StartAgent(t, srv, node, bridge, "--token", token)
	t.Logf("join to agent ready: %v", time.Since(begin).Round(time.Millisecond))
	kc := filepath.Join(a.DataDir, "agent", "kubelet.kubeconfig")
	for _, f := range []string{kc, filepath.Join(a.DataDir, "agent", "kubelet-client-current.pem")} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, err, st)
		}
	}
	waitNodeReady(t, cs, node, 90*time.Second)
	if out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput(); err != nil {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	pod := framework.BusyboxPod("joined", "sleep", "3600")
	pod.Spec.NodeName = node
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, cs, "joined", 90*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && framework.PodReady(p)
	})

	// The CSR: approved and issued, requested by the bootstrap identity,
	// for CN=system:node:<node>.
	csrs, err := clientCSRs(ctx, cs)
	if err != nil || len(csrs) != 1 {
		t.Fatalf("client CSRs after join: %v, %d", err, len(csrs))
	}
	csr := csrs[0]
	if csr.Spec.Username != "system:bootstrap:"+id || csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName {
		t.Errorf("csr spec: user %q signer %q groups %v", csr.Spec.Username, csr.Spec.SignerName, csr.Spec.Groups)
	}
	block, _ := pem.Decode(csr.Status.Certificate)
	if block == nil {
		t.Fatalf("csr %s has no certificate", csr.Name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:"+node || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "system:nodes" {
		t.Errorf("issued subject %s", cert.Subject)
	}
	if err := cert.CheckSignatureFrom(parseCert(t, caPEM)); err != nil {
		t.Errorf("issued certificate not signed by the cluster CA: %v", err)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("issued certificate lives %v, want about a year", d)
	}
	k := srv.NewKubectl(t, framework.DefaultKubectl)
	get := k.MustRun("get", "csr")
	t.Logf("kubectl get csr:\n%s", get)
	for _, want := range []string{"NAME", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION", csr.Name, node,
		"kubernetes.io/kube-apiserver-client-kubelet", "system:bootstrap:" + id, "Approved,Issued"} {
		if !strings.Contains(get, want) {
			t.Errorf("kubectl get csr lacks %q", want)
		}
	}

	// A restart re-uses the certificates: no new CSR.
	all, _ := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	a.Stop()
	a.Start()
	if !strings.Contains(a.Logs(), "re-using the node certificate") {
		t.Errorf("restarted agent did not re-use its certificate")
	}
	if !strings.Contains(a.Logs(), "serving the kubelet certificate from an earlier start") {
		t.Errorf("restarted agent did not re-use its serving certificate")
	}
	waitNodeReady(t, cs, node, 90*time.Second)
	if after, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{}); err != nil || len(after.Items) != len(all.Items) {
		t.Errorf("CSRs after restart: %v, %d, want %d", err, len(after.Items), len(all.Items))
	}

	// kubectl certificate approve|deny on requests for another signer:
	// approved (or denied) but never signed, as upstream.
	for _, c := range []struct{ name, verb, want string }{{"manual-approve", "approve", "Approved"}, {"manual-deny", "deny", "Denied"}} {
		manual := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: c.name},
			Spec: certificatesv1.CertificateSigningRequestSpec{Request: newCSR(t, "someone"), SignerName: "example.com/custom",
				Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}}}
		if _, err := cs.CertificatesV1().CertificateSigningRequests().Create(ctx, manual, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if out := k.MustRun("certificate", c.verb, c.name); !strings.Contains(out, c.name) {
			t.Errorf("kubectl certificate %s: %q", c.verb, out)
		}
		time.Sleep(2 * time.Second)
		got, err := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, c.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Status.Conditions) != 1 || string(got.Status.Conditions[0].Type) != c.want || len(got.Status.Certificate) != 0 {
			t.Errorf("%s after kubectl certificate %s: %+v, certificate %d bytes", c.name, c.verb, got.Status.Conditions, len(got.Status.Certificate))
		}
		if line := k.MustRun("get", "csr", c.name, "--no-headers"); !strings.Contains(line, " "+c.want+"\n") && !strings.HasSuffix(strings.TrimSpace(line), c.want) {
			t.Errorf("kubectl get csr %s: %q, want condition %s", c.name, line, c.want)
		}
	}
	// Once approved, a request cannot be denied (kubectl refuses on its
	// own; the server refuses too).
	if r := k.Run("certificate", "deny", "manual-approve"); r.Err == nil {
		t.Errorf("kubectl certificate deny after approve succeeded: %s", r.Stdout)
	}
	appr, err := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, "manual-approve", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	appr.Status.Conditions = append(appr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue, Reason: "Test"})
	if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, appr.Name, appr, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "Approved and Denied conditions are mutually exclusive") {
		t.Errorf("deny after approve through the API: %v, want 422", err)
	}
	// A bootstrap identity cannot approve its own request.
	own, err := bootCS.CertificatesV1().CertificateSigningRequests().Get(ctx, "manual-deny", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bootCS.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, own.Name, own, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("bootstrap token writing approval: %v, want 403", err)
	}
}

// clientCSRs are the kubelet client certificate requests.
func clientCSRs(ctx context.Context, cs kubernetes.Interface) ([]certificatesv1.CertificateSigningRequest, error) {
	l, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []certificatesv1.CertificateSigningRequest
	for _, c := range l.Items {
		if c.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName {
			out = append(out, c)
		}
	}
	return out, nil
}

func waitNodeReady(t *testing.T, cs kubernetes.Interface, node string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if nd, err := cs.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{}); err == nil {
			for _, c := range nd.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("node %s not Ready within %v", node, timeout)
}

func bearerClient(t *testing.T, srv *framework.Server, caPEM []byte, token string) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL(), BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func newCSR(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func parseCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(p)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
