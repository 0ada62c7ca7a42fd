package join

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// signingDuration is the server's --cluster-signing-duration in this test:
// short enough to watch the node renew its certificates.
const signingDuration = 60 * time.Second

// TestNodeCertificates: a joined node gets a kubelet serving certificate
// from the cluster CA through a kubelet-serving CSR, serves it, the API
// server verifies it for logs and exec and refuses a kubelet it cannot
// verify, and the node renews its client certificate before it expires
// and keeps heart-beating with the new one.
func TestNodeCertificates(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	cidr := fmt.Sprintf("10.%d.0.0/16", 150+(n*11+5)%50)
	srv := framework.StartServer(t, "--cluster-cidr", cidr, "--cluster-signing-duration", signingDuration.String())
	cs := srv.Client()
	ctx := framework.Context(t, 8*time.Minute)
	caPEM, err := os.ReadFile(filepath.Join(srv.DataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	ca := x509.NewCertPool()
	ca.AppendCertsFromPEM(caPEM)
	token, err := os.ReadFile(filepath.Join(srv.DataDir, "node-token"))
	if err != nil {
		t.Fatal(err)
	}

	const node = "certs-e2e"
	bridge := fmt.Sprintf("skc%d", n%100000)
	begin := time.Now()
	a := framework.StartAgent(t, srv, node, bridge, "--token", strings.TrimSpace(string(token)))
	waitNodeReady(t, cs, node, 90*time.Second)

	// The serving CSR: requested by the node itself, approved, issued, for
	// the node's names and addresses.
	var serving *certificatesv1.CertificateSigningRequest
	for deadline := time.Now().Add(60 * time.Second); serving == nil && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		csrs, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range csrs.Items {
			if c.Spec.SignerName == certificatesv1.KubeletServingSignerName && len(c.Status.Certificate) > 0 {
				serving = &csrs.Items[i]
			}
		}
	}
	if serving == nil {
		t.Fatalf("no issued kubelet-serving CSR within 60s; agent log:\n%s", a.Logs())
	}
	t.Logf("join to serving certificate issued: %v", time.Since(begin).Round(time.Millisecond))
	if serving.Spec.Username != "system:node:"+node || !slices.Contains(serving.Spec.Groups, "system:nodes") {
		t.Errorf("serving CSR requested by %q %v, want the node itself", serving.Spec.Username, serving.Spec.Groups)
	}
	if !approved(serving) {
		t.Errorf("serving CSR conditions %+v, want Approved", serving.Status.Conditions)
	}
	issued := parseCert(t, serving.Status.Certificate)
	if issued.Subject.CommonName != "system:node:"+node || !slices.Equal(issued.Subject.Organization, []string{"system:nodes"}) ||
		!slices.Contains(issued.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("serving certificate subject %s, usages %v", issued.Subject, issued.ExtKeyUsage)
	}

	// The kubelet serves it: a TLS client trusting only the cluster CA
	// verifies the kubelet at the node's InternalIP.
	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodeIP := address(nd, corev1.NodeInternalIP)
	kubelet := net.JoinHostPort(nodeIP, strconv.Itoa(int(nd.Status.DaemonEndpoints.KubeletEndpoint.Port)))
	leaf := waitKubeletCert(t, kubelet, nodeIP, ca, nil, 30*time.Second)
	if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.String() == nodeIP }) {
		t.Errorf("kubelet certificate IP SANs %v lack the node IP %s", leaf.IPAddresses, nodeIP)
	}
	t.Logf("kubelet at %s serves %s, serial %s, SANs %v %v, %v..%v", kubelet, leaf.Subject, leaf.SerialNumber.Text(16),
		leaf.DNSNames, leaf.IPAddresses, leaf.NotBefore.Format(time.TimeOnly), leaf.NotAfter.Format(time.TimeOnly))
	if f := filepath.Join(a.DataDir, "agent", "kubelet-server-current.pem"); !fileMode(f, 0o600) {
		t.Errorf("%s: missing or not mode 0600", f)
	}

	// logs and exec through the API server, which now verifies the kubelet.
	if out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput(); err != nil {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	pod := framework.BusyboxPod("certs", "sh", "-c", "echo hello-certs; sleep 3600")
	pod.Spec.NodeName = node
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, cs, "certs", 90*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && framework.PodReady(p)
	})
	k := srv.NewKubectl(t, framework.DefaultKubectl)
	if out := waitLogs(t, k, "certs", "hello-certs"); !strings.Contains(out, "hello-certs") {
		t.Errorf("kubectl logs: %q", out)
	}
	if out := k.MustRun("exec", "certs", "--", "echo", "exec-ok"); strings.TrimSpace(out) != "exec-ok" {
		t.Errorf("kubectl exec: %q", out)
	}

	// A kubelet the cluster CA does not vouch for: a Node whose kubelet
	// endpoint is a TLS server with its own certificate. Logs and exec
	// fail with a 503 naming the problem; the server sees no request.
	var reached atomic.Int32
	bogus := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Write([]byte("secret-data-from-a-bogus-kubelet\n"))
	}))
	t.Cleanup(bogus.Close)
	bogusPort, _ := strconv.Atoi(bogus.URL[strings.LastIndex(bogus.URL, ":")+1:])
	bogusNode := createBogusNode(t, cs, "certs-bogus", int32(bogusPort))
	bp := framework.BusyboxPod("on-bogus", "sleep", "3600")
	bp.Spec.NodeName = bogusNode
	if _, err := cs.CoreV1().Pods("default").Create(ctx, bp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	body, err := cs.CoreV1().Pods("default").GetLogs("on-bogus", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err == nil || !apierrors.IsServiceUnavailable(err) || !strings.Contains(string(body), "does not serve a certificate the cluster CA verifies") ||
		strings.Contains(string(body), "secret-data") {
		t.Errorf("logs from a kubelet with a foreign certificate: %v %q, want 503 naming the certificate", err, body)
	} else {
		t.Logf("bogus kubelet, logs: %v: %s", err, body)
	}
	if r := k.Run("exec", "on-bogus", "--", "true"); r.Err == nil || !strings.Contains(r.Stderr, "does not serve a certificate the cluster CA verifies") {
		t.Errorf("kubectl exec on a kubelet with a foreign certificate: %v\nstdout %q\nstderr %q", r.Err, r.Stdout, r.Stderr)
	} else {
		t.Logf("bogus kubelet, exec: %s", lastLine(r.Stderr))
	}
	if got := reached.Load(); got != 0 {
		t.Errorf("the bogus kubelet received %d requests", got)
	}
	cs.CoreV1().Pods("default").Delete(ctx, "on-bogus", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})

	// Rotation: the client certificate is renewed through a new CSR before
	// it expires; the node keeps heart-beating past the first
	// certificate's expiry.
	clientFile := filepath.Join(a.DataDir, "agent", "kubelet-client-current.pem")
	first := certFromFile(t, clientFile)
	t.Logf("first client certificate: serial %s, %v..%v", first.SerialNumber.Text(16), first.NotBefore.Format(time.TimeOnly), first.NotAfter.Format(time.TimeOnly))
	var renewed *x509.Certificate
	for deadline := first.NotAfter.Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if c := certFromFile(t, clientFile); c.SerialNumber.Cmp(first.SerialNumber) != 0 {
			renewed = c
			break
		}
	}
	if renewed == nil {
		t.Fatalf("client certificate not renewed by its expiry %v; agent log:\n%s", first.NotAfter, a.Logs())
	}
	life := first.NotAfter.Sub(first.NotBefore)
	t.Logf("client certificate renewed at %.0f%% of its %v lifetime: serial %s, until %v",
		100*float64(time.Since(first.NotBefore))/float64(life), life, renewed.SerialNumber.Text(16), renewed.NotAfter.Format(time.TimeOnly))
	if time.Since(first.NotBefore) < life*6/10 {
		t.Errorf("renewed after %v of a %v lifetime, want 70-90%%", time.Since(first.NotBefore), life)
	}
	if _, err := renewed.Verify(x509.VerifyOptions{Roots: ca, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil ||
		renewed.Subject.CommonName != "system:node:"+node {
		t.Errorf("renewed certificate %s: %v", renewed.Subject, err)
	}
	if !fileMode(clientFile, 0o600) {
		t.Errorf("%s: not mode 0600 after renewal", clientFile)
	}
	csrs, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	renewals := 0
	for _, c := range csrs.Items {
		if c.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName && c.Spec.Username == "system:node:"+node && approved(&c) {
			renewals++
		}
	}
	if renewals == 0 {
		t.Errorf("no approved client CSR requested by the node itself")
	}
	// Past the first certificate's expiry the node still heart-beats and
	// stays Ready, and the agent logged the switch.
	if !sleepCtx(ctx, time.Until(first.NotAfter.Add(5*time.Second))) {
		t.Fatal(ctx.Err())
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Second) {
		lease, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, node, metav1.GetOptions{})
		if err == nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(first.NotAfter) {
			t.Logf("lease renewed at %v, after the first certificate expired", lease.Spec.RenewTime.Format(time.TimeOnly))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node lease not renewed after the first client certificate expired (%v): %v %+v; agent log:\n%s", first.NotAfter, err, lease, a.Logs())
		}
	}
	waitNodeReady(t, cs, node, 10*time.Second)
	if !strings.Contains(a.Logs(), "rotated the client certificate") {
		t.Errorf("agent did not log the rotation")
	}
	// The serving certificate is renewed the same way and swapped in
	// without a restart.
	if next := waitKubeletCert(t, kubelet, nodeIP, ca, leaf.SerialNumber.Bytes(), 30*time.Second); next.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Errorf("kubelet still serves serial %s after its rotation deadline", leaf.SerialNumber.Text(16))
	}
	if out := k.MustRun("logs", "certs"); !strings.Contains(out, "hello-certs") {
		t.Errorf("kubectl logs after rotations: %q", out)
	}
}

func approved(c *certificatesv1.CertificateSigningRequest) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == certificatesv1.CertificateApproved && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func address(n *corev1.Node, ty corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == ty {
			return a.Address
		}
	}
	return ""
}

// waitKubeletCert dials the kubelet trusting only the cluster CA until the
// handshake verifies (the kubelet serves its self-signed certificate until
// the cluster's is issued) and the serial differs from notSerial.
func waitKubeletCert(t *testing.T, addr, ip string, ca *x509.CertPool, notSerial []byte, timeout time.Duration) *x509.Certificate {
	t.Helper()
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: ca, ServerName: ip, MinVersion: tls.VersionTLS12})
		if err != nil {
			last = err
			continue
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if notSerial != nil && string(leaf.SerialNumber.Bytes()) == string(notSerial) {
			last = fmt.Errorf("still serial %x", notSerial)
			continue
		}
		return leaf
	}
	t.Fatalf("kubelet at %s: no certificate verified by the cluster CA within %v: %v", addr, timeout, last)
	return nil
}

// createBogusNode registers a Node whose kubelet endpoint is 127.0.0.1:port.
func createBogusNode(t *testing.T, cs kubernetes.Interface, name string, port int32) string {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	// Controllers (node IPAM) update the new Node too.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		nd, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		nd.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
		nd.Status.DaemonEndpoints.KubeletEndpoint.Port = port
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, nd, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return name
}

func certFromFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(path, path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fileMode(path string, want os.FileMode) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().Perm() == want
}

// waitLogs runs kubectl logs until the output holds want (the container
// may not have written it yet).
func waitLogs(t *testing.T, k *framework.Kubectl, pod, want string) string {
	t.Helper()
	var r framework.Result
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if r = k.Run("logs", pod); r.Err == nil && strings.Contains(r.Stdout, want) {
			return r.Stdout
		}
	}
	t.Fatalf("kubectl logs %s: %v\nstdout %q\nstderr %q", pod, r.Err, r.Stdout, r.Stderr)
	return ""
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
