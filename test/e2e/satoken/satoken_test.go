package satoken

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

const (
	node      = "sst-node"
	mountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// tokenClient is a client that authenticates with token only (no client
// certificate), verifying the server with the cluster CA.
func tokenClient(t *testing.T, srv *framework.Server, token string) kubernetes.Interface {
	t.Helper()
	admin := srv.RESTConfig()
	cfg := &rest.Config{Host: admin.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData, CAFile: admin.CAFile}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func whoami(ctx context.Context, cs kubernetes.Interface) (authenticationv1.UserInfo, error) {
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

func TestServiceAccountTokens(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	// Pods reach the API server through the kubernetes Service, whose
	// endpoint is the advertised address: the host's, not loopback.
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 100+(n+53)%40),
		"--service-cidr", fmt.Sprintf("172.%d.0.0/16", 16+(n+5)%8), "--bind-address", "0.0.0.0", "--advertise-address", "")
	cs := srv.Client()
	ctx := framework.Context(t, 10*time.Minute)
	table := fmt.Sprintf("sst-e2e-%d", n)
	// Registered first so that it runs last, after the agent stopped.
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "ip", table).Run() })
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("sst%d", n%100000), "--proxy-table", table)
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	kubectl := srv.NewKubectl(t, framework.DefaultKubectl)
	caPEM := string(srv.RESTConfig().CAData)
	if caPEM == "" {
		b, err := os.ReadFile(srv.RESTConfig().CAFile)
		if err != nil {
			t.Fatal(err)
		}
		caPEM = string(b)
	}

	t.Run("every namespace has kube-root-ca.crt", func(t *testing.T) {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sst-fresh"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, ns := range []string{"default", "kube-system", "kube-public", "sst-fresh"} {
			cm := waitConfigMap(t, cs, ns, func(cm *corev1.ConfigMap) bool { return cm.Data["ca.crt"] == caPEM })
			if len(cm.Data) != 1 {
				t.Errorf("%s: data keys %v", ns, cm.Data)
			}
		}
		t.Logf("kube-root-ca.crt in a new namespace after %s", time.Since(start).Round(time.Millisecond))
		// Deleted: re-created; changed: put back.
		if err := cs.CoreV1().ConfigMaps("sst-fresh").Delete(ctx, "kube-root-ca.crt", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitConfigMap(t, cs, "sst-fresh", func(cm *corev1.ConfigMap) bool { return cm.Data["ca.crt"] == caPEM })
		cm, err := cs.CoreV1().ConfigMaps("sst-fresh").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["ca.crt"] = "tampered"
		if _, err := cs.CoreV1().ConfigMaps("sst-fresh").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitConfigMap(t, cs, "sst-fresh", func(cm *corev1.ConfigMap) bool { return cm.Data["ca.crt"] == caPEM })
	})

	pod := framework.BusyboxPod("sa-pod", "sleep", "3600")
	pod.Spec.NodeName = node
	created, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	framework.WaitPod(t, cs, "sa-pod", 2*time.Minute, "ready", framework.PodReady)
	t.Logf("pod with a kube-api-access volume ready after %s", time.Since(start).Round(time.Millisecond))

	t.Run("admission adds the kube-api-access volume", func(t *testing.T) {
		if created.Spec.ServiceAccountName != "default" {
			t.Errorf("serviceAccountName %q", created.Spec.ServiceAccountName)
		}
		var vol *corev1.Volume
		for i := range created.Spec.Volumes {
			if strings.HasPrefix(created.Spec.Volumes[i].Name, "kube-api-access-") {
				vol = &created.Spec.Volumes[i]
			}
		}
		if vol == nil || vol.Projected == nil || len(vol.Projected.Sources) != 3 || len(vol.Name) != len("kube-api-access-")+5 {
			t.Fatalf("volumes %+v", created.Spec.Volumes)
		}
		m := created.Spec.Containers[0].VolumeMounts
		if len(m) != 1 || m[0].Name != vol.Name || m[0].MountPath != mountPath || !m[0].ReadOnly {
			t.Errorf("mounts %+v", m)
		}
	})

	token := strings.TrimSpace(kubectl.MustRun("exec", "sa-pod", "--", "cat", mountPath+"/token"))
	t.Run("the pod gets token, ca.crt and namespace", func(t *testing.T) {
		if ns := kubectl.MustRun("exec", "sa-pod", "--", "cat", mountPath+"/namespace"); ns != "default" {
			t.Errorf("namespace file %q", ns)
		}
		if ca := kubectl.MustRun("exec", "sa-pod", "--", "cat", mountPath+"/ca.crt"); ca != caPEM {
			t.Errorf("ca.crt %q, want the cluster CA", ca)
		}
		if strings.Count(token, ".") != 2 {
			t.Fatalf("token %q is not a JWT", token)
		}
	})

	sa, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the pod's token authenticates as the service account", func(t *testing.T) {
		ui, err := whoami(ctx, tokenClient(t, srv, token))
		if err != nil {
			t.Fatal(err)
		}
		if ui.Username != "system:serviceaccount:default:default" || ui.UID != string(sa.UID) ||
			strings.Join(ui.Groups, ",") != "system:serviceaccounts,system:serviceaccounts:default,system:authenticated" {
			t.Errorf("user %+v", ui)
		}
		if got := ui.Extra["authentication.kubernetes.io/pod-name"]; len(got) != 1 || got[0] != "sa-pod" {
			t.Errorf("extra %v", ui.Extra)
		}
		// The claims as a relying party sees them.
		var claims map[string]any
		if err := json.Unmarshal(jwtPayload(t, token), &claims); err != nil {
			t.Fatal(err)
		}
		k8s, _ := claims["kubernetes.io"].(map[string]any)
		podClaim, _ := k8s["pod"].(map[string]any)
		if claims["iss"] != "https://kubernetes.default.svc.cluster.local" || claims["sub"] != "system:serviceaccount:default:default" ||
			podClaim["uid"] != string(created.UID) {
			t.Errorf("claims %v", claims)
		}
		// Upstream's extended expiration: valid for a year, with a
		// warnafter at the hour (and 7 s) the admission asked for.
		warn, _ := k8s["warnafter"].(float64)
		if iat := claims["iat"].(float64); claims["exp"].(float64)-iat != 365*24*3600 || warn-iat != 3607 {
			t.Errorf("exp %v, warnafter %v, iat %v: want iat + a year and iat + 3607 s", claims["exp"], k8s["warnafter"], iat)
		}
	})

	t.Run("from inside the pod through the kubernetes Service", func(t *testing.T) {
		svc, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		env := strings.TrimSpace(kubectl.MustRun("exec", "sa-pod", "--", "sh", "-c", "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"))
		if env != svc.Spec.ClusterIP+":443" {
			t.Fatalf("KUBERNETES_SERVICE_HOST:PORT %q, want %s:443", env, svc.Spec.ClusterIP)
		}
		// busybox's wget crashes on TLS here (exit 139, on the host too), so
		// a plain HTTP request shows that the Service leads to the API
		// server: Go's TLS server answers it with its own 400.
		script := `printf 'GET /version HTTP/1.0\r\n\r\n' | nc -w 5 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT`
		var r framework.Result
		deadline := time.Now().Add(30 * time.Second)
		for {
			r = kubectl.Run("exec", "sa-pod", "--", "sh", "-c", script)
			if strings.Contains(r.Stdout, "Client sent an HTTP request to an HTTPS server") || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if !strings.Contains(r.Stdout, "Client sent an HTTP request to an HTTPS server") {
			t.Fatalf("nc from the pod to the kubernetes Service: %v: %q %q", r.Err, r.Stdout, r.Stderr)
		}
	})

	t.Run("the token dies with its pod", func(t *testing.T) {
		zero := int64(0)
		if err := cs.CoreV1().Pods("default").Delete(ctx, "sa-pod", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			_, err := cs.CoreV1().Pods("default").Get(ctx, "sa-pod", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod not gone: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := whoami(ctx, tokenClient(t, srv, token)); !apierrors.IsUnauthorized(err) {
			t.Errorf("token of a deleted pod: %v, want 401", err)
		}
	})

	t.Run("kubectl create token", func(t *testing.T) {
		tok := strings.TrimSpace(kubectl.MustRun("create", "token", "default", "--duration", "10m"))
		ui, err := whoami(ctx, tokenClient(t, srv, tok))
		if err != nil || ui.Username != "system:serviceaccount:default:default" {
			t.Fatalf("user %+v (%v)", ui, err)
		}
		var claims map[string]any
		if err := json.Unmarshal(jwtPayload(t, tok), &claims); err != nil || claims["exp"].(float64)-claims["iat"].(float64) != 600 {
			t.Errorf("claims %v (%v)", claims, err)
		}
		r := kubectl.Run("create", "token", "default", "--duration", "5m")
		if r.Err == nil || !strings.Contains(r.Stderr, "may not specify a duration less than 10 minutes") {
			t.Errorf("5m token: %v: %s", r.Err, r.Stderr)
		}
		r = kubectl.Run("create", "token", "nobody")
		if r.Err == nil || !strings.Contains(r.Stderr, `serviceaccounts "nobody" not found`) {
			t.Errorf("token of a missing account: %v: %s", r.Err, r.Stderr)
		}
		// A token for another audience is not one for the API server.
		aud := strings.TrimSpace(kubectl.MustRun("create", "token", "default", "--audience", "vault"))
		if _, err := whoami(ctx, tokenClient(t, srv, aud)); !apierrors.IsUnauthorized(err) {
			t.Errorf("vault-audience token: %v, want 401", err)
		}
		// TokenReview: what a relying party (here "vault") asks the API.
		review := func(tok string, auds ...string) authenticationv1.TokenReviewStatus {
			r, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
				Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: auds}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("token review: %v", err)
			}
			return r.Status
		}
		if st := review(aud, "vault"); !st.Authenticated || st.User.Username != "system:serviceaccount:default:default" || st.Audiences[0] != "vault" {
			t.Errorf("review of the vault token for vault: %+v", st)
		}
		if st := review(aud); st.Authenticated || st.Error == "" {
			t.Errorf("review of the vault token for the API server: %+v", st)
		}
		if st := review(tok); !st.Authenticated || st.User.UID != string(sa.UID) {
			t.Errorf("review of an API token: %+v", st)
		}
	})

	t.Run("a token of a deleted service account is refused", func(t *testing.T) {
		if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "short-lived"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimSpace(kubectl.MustRun("create", "token", "short-lived"))
		if _, err := whoami(ctx, tokenClient(t, srv, tok)); err != nil {
			t.Fatalf("fresh token: %v", err)
		}
		if err := cs.CoreV1().ServiceAccounts("default").Delete(ctx, "short-lived", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := whoami(ctx, tokenClient(t, srv, tok)); !apierrors.IsUnauthorized(err) {
			t.Errorf("token of a deleted account: %v, want 401", err)
		}
	})

	t.Run("automountServiceAccountToken false gives no volume", func(t *testing.T) {
		off := false
		p := framework.BusyboxPod("no-token", "sleep", "3600")
		p.Spec.AutomountServiceAccountToken = &off
		got, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Spec.Volumes) != 0 || len(got.Spec.Containers[0].VolumeMounts) != 0 || got.Spec.ServiceAccountName != "default" {
			t.Errorf("spec %+v", got.Spec)
		}
		_ = cs.CoreV1().Pods("default").Delete(ctx, "no-token", metav1.DeleteOptions{})
	})

	t.Run("a pod naming a missing service account is forbidden", func(t *testing.T) {
		p := framework.BusyboxPod("ghost", "sleep", "3600")
		p.Spec.ServiceAccountName = "ghost"
		_, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `error looking up service account default/ghost: serviceaccount "ghost" not found`) {
			t.Errorf("create: %v, want 403", err)
		}
	})

	t.Run("issuer discovery", func(t *testing.T) {
		for path, want := range map[string]string{
			"/.well-known/openid-configuration": `"jwks_uri":"https://kubernetes.default.svc.cluster.local/openid/v1/jwks"`,
			"/openid/v1/jwks":                   `"kty":"EC"`,
		} {
			body, err := cs.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(ctx)
			if err != nil || !strings.Contains(string(body), want) {
				t.Errorf("%s: %s (%v)", path, body, err)
			}
		}
	})
}

func jwtPayload(t *testing.T, tok string) []byte {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitConfigMap(t *testing.T, cs kubernetes.Interface, ns string, cond func(*corev1.ConfigMap) bool) *corev1.ConfigMap {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), "kube-root-ca.crt", metav1.GetOptions{})
		if err == nil && cond(cm) {
			return cm
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/kube-root-ca.crt: %+v (%v)", ns, cm, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
