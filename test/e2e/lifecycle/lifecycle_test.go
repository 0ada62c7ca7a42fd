// Package lifecycle_test checks `skiff server` as a process: start-up,
// certificates, restarts, kill -9 durability, several servers side by side.
package lifecycle_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func TestStartupBootstrapsCluster(t *testing.T) {
	s := framework.StartServer(t)
	ctx := framework.Context(t, time.Minute)
	cs := s.Client()

	fi, err := os.Stat(s.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin kubeconfig mode %v, want 0600", fi.Mode().Perm())
	}
	for _, f := range []string{"ca.crt", "ca.key", "serving.crt", "serving.key"} {
		if _, err := os.Stat(filepath.Join(s.DataDir, "tls", f)); err != nil {
			t.Errorf("tls/%s: %v", f, err)
		}
	}
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		got, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Errorf("namespace %s: %v", ns, err)
			continue
		}
		if got.Status.Phase != corev1.NamespaceActive {
			t.Errorf("namespace %s phase %q", ns, got.Status.Phase)
		}
	}
	svc, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("kubernetes service: %v", err)
	}
	if svc.Spec.ClusterIP != "10.43.0.1" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 {
		t.Errorf("kubernetes service spec = %+v", svc.Spec)
	}
	ep, err := cs.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("kubernetes endpoints: %v", err)
	}
	if len(ep.Subsets) != 1 || ep.Subsets[0].Addresses[0].IP != "127.0.0.1" || ep.Subsets[0].Ports[0].Port != int32(s.Port) {
		t.Errorf("kubernetes endpoints = %+v", ep.Subsets)
	}
}

func TestUnauthenticatedRequestsGet401(t *testing.T) {
	s := framework.StartServer(t)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	for path, want := range map[string]int{
		"/api/v1/namespaces": http.StatusUnauthorized,
		"/apis":              http.StatusUnauthorized,
		"/healthz":           http.StatusOK,
		"/readyz":            http.StatusOK,
		"/livez":             http.StatusOK,
		"/version":           http.StatusOK,
	} {
		resp, err := c.Get(s.URL() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without credentials: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
}

func TestRestartKeepsObjects(t *testing.T) {
	s := framework.StartServer(t)
	ctx := framework.Context(t, 2*time.Minute)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keep", Namespace: "default"}, Data: map[string]string{"a": "1"}}
	created, err := s.Client().CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Start()
	got, err := s.Client().CoreV1().ConfigMaps("default").Get(ctx, "keep", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got.UID != created.UID || got.Data["a"] != "1" {
		t.Errorf("after restart got %+v, want uid %s", got, created.UID)
	}
	// The bootstrap did not duplicate or break anything on the second start.
	svcs, err := s.Client().CoreV1().Services("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(svcs.Items) != 1 {
		t.Errorf("services after restart: %v %v", svcs, err)
	}
}

// Every write acknowledged before a kill -9 is there after restart.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	s := framework.StartServer(t)
	ctx := framework.Context(t, 2*time.Minute)
	cs := s.Client()
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	s.Kill9()
	close(stop)
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d writes acknowledged before the kill; the test proves nothing", len(acked))
	}
	s.Start()
	list, err := s.Client().CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	var lost []string
	for _, n := range acked {
		if !have[n] {
			lost = append(lost, n)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes lost after kill -9: %v", len(lost), len(acked), lost)
	}
	t.Logf("%d acknowledged writes all present after kill -9", len(acked))
}

func TestServersSideBySide(t *testing.T) {
	a := framework.StartServer(t)
	b := framework.StartServer(t)
	ctx := framework.Context(t, time.Minute)
	if _, err := a.Client().CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "only-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Client().CoreV1().ConfigMaps("default").Get(ctx, "only-a", metav1.GetOptions{}); err == nil {
		t.Error("server b sees server a's object: they share state")
	}
}
