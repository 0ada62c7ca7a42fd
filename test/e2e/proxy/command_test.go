package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestProxyCommand runs `skiff proxy` alone: bad flags are refused with the
// flag's name, a Service shows up in its table, /metrics counts the syncs.
func TestProxyCommand(t *testing.T) {
	framework.RequireRoot(t)
	out, err := exec.Command(framework.Binary(t), "proxy", "--kubeconfig", "/nonexistent", "--cluster-cidr", "10.0.0.0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--kubeconfig") {
		t.Errorf("skiff proxy with a missing kubeconfig: %v: %s", err, out)
	}

	n := os.Getpid()
	srv := framework.StartServer(t, "--service-cidr", fmt.Sprintf("172.%d.0.0/16", 24+(n+3)%8))
	out, err = exec.Command(framework.Binary(t), "proxy", "--kubeconfig", srv.Kubeconfig, "--node-name", "x", "--cluster-cidr", "10.0.0.0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--cluster-cidr") {
		t.Errorf("skiff proxy --cluster-cidr 10.0.0.0: %v: %s", err, out)
	}

	table := fmt.Sprintf("skp-cmd-%d", n)
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", table).Run() })
	port := framework.FreePort(t)
	cmd := exec.Command(framework.Binary(t), "proxy", "--kubeconfig", srv.Kubeconfig, "--node-name", "cmd-node",
		"--cluster-cidr", "10.123.0.0/16", "--table", table, "--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Stderr = framework.TestWriter(t)
	stdout, _ := cmd.StdoutPipe()
	if err := framework.StartProcess(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "skiff proxy is ready") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(time.Minute):
		t.Fatal("skiff proxy not ready within 1m")
	}

	ctx := context.Background()
	svc, err := srv.Client().CoreV1().Services("default").Create(ctx, service("cmd", map[string]string{"app": "none"}, corev1.ServiceTypeClusterIP), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := svc.Spec.ClusterIP + " . tcp . 80 : goto reject-chain"
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(nftTable(t, table), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not in table %s within 5s:\n%s", want, table, nftTable(t, table))
		}
		time.Sleep(20 * time.Millisecond)
	}

	r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if !strings.Contains(string(b), `skiff_proxy_sync_duration_seconds_count{kind="full"} 1`) ||
		!strings.Contains(string(b), `skiff_proxy_sync_duration_seconds_count{kind="partial"}`) {
		t.Errorf("metrics:\n%s", b)
	}
}
