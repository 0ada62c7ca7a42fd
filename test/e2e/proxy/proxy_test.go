package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

const node = "proxy-e2e"

// webPod serves its own name on :8080 and is Ready once it answers. On
// SIGTERM it keeps serving for 3 s, as a real server drains, so that a
// request routed to it while it leaves rotation still succeeds.
func webPod(name string) *corev1.Pod {
	p := framework.BusyboxPod(name, "sh", "-c",
		"mkdir -p /www && echo "+name+" > /www/index.html && httpd -f -p 8080 -h /www & pid=$!; "+
			"trap 'sleep 3; kill $pid; exit 0' TERM; wait")
	grace := int64(10)
	p.Spec.TerminationGracePeriodSeconds = &grace
	p.Labels = map[string]string{"app": "web", "name": name}
	p.Spec.NodeName = node
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	return p
}

func service(name string, selector map[string]string, typ corev1.ServiceType) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: typ, Selector: selector,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
}

// get fetches http://addr/ on a fresh connection and returns the body.
func get(addr string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err == nil && r.StatusCode != http.StatusOK {
		// Not a pod: this sandbox's egress proxy answers any address 404.
		err = fmt.Errorf("GET %s: %s (server %q)", addr, r.Status, r.Header.Get("Server"))
	}
	return strings.TrimSpace(string(b)), err
}

// waitGet polls addr until it answers.
func waitGet(t *testing.T, addr string, timeout time.Duration) string {
	t.Helper()
	var err error
	var body string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if body, err = get(addr); err == nil {
			return body
		}
	}
	t.Fatalf("GET %s: %v", addr, err)
	return ""
}

func createSvc(t *testing.T, cs kubernetes.Interface, s *corev1.Service) *corev1.Service {
	t.Helper()
	s, err := cs.CoreV1().Services("default").Create(context.Background(), s, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func nftTable(t *testing.T, table string) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table %s: %v: %s", table, err, out)
	}
	return string(out)
}

func TestServiceProxy(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 180+(n+37)%60),
		"--service-cidr", fmt.Sprintf("172.%d.0.0/16", 24+n%8))
	cs := srv.Client()
	ctx := framework.Context(t, 10*time.Minute)
	table := fmt.Sprintf("skp-e2e-%d", n)
	// Registered first so that it runs last, after the agent stopped.
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", table).Run() })
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("skp%d", n%100000), "--proxy-table", table)
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	if !strings.Contains(nftTable(t, table), "chain nat-prerouting") {
		t.Fatalf("the agent is ready but its proxy table has no base chains")
	}
	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var nodeIP string
	for _, ad := range nd.Status.Addresses {
		if ad.Type == corev1.NodeInternalIP {
			nodeIP = ad.Address
		}
	}

	names := []string{"web-0", "web-1", "web-2"}
	for _, name := range names {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, webPod(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	client := framework.BusyboxPod("client", "sleep", "3600")
	client.Spec.NodeName = node
	if _, err := cs.CoreV1().Pods("default").Create(ctx, client, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range append(names, "client") {
		framework.WaitPod(t, cs, name, 2*time.Minute, "ready", framework.PodReady)
	}
	web := createSvc(t, cs, service("web", map[string]string{"app": "web"}, corev1.ServiceTypeNodePort))
	self := createSvc(t, cs, service("self", map[string]string{"name": "web-0"}, corev1.ServiceTypeClusterIP))
	webAddr := net.JoinHostPort(web.Spec.ClusterIP, "80")
	if os.Getenv("SKP_HOLD") != "" { // debugging: keep everything up for a look
		t.Cleanup(func() { t.Logf("holding; kubeconfig %s", srv.Kubeconfig); time.Sleep(150 * time.Second) })
	}

	t.Run("ClusterIP from the node spreads over the pods", func(t *testing.T) {
		waitGet(t, webAddr, 30*time.Second)
		seen := map[string]int{}
		for i := 0; i < 60; i++ {
			body, err := get(webAddr)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			seen[body]++
		}
		t.Logf("60 requests: %v", seen)
		for _, name := range names {
			if seen[name] == 0 {
				t.Errorf("%s got none of 60 requests: %v", name, seen)
			}
		}
	})

	clientPID := podPID(t, mustGetPod(t, cs, "client"))
	t.Run("ClusterIP from a pod", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 30; i++ {
			body, err := podGet(clientPID, webAddr)
			if err != nil {
				t.Fatalf("request %d from a pod: %v", i, err)
			}
			seen[body]++
		}
		t.Logf("30 requests from a pod: %v", seen)
		for _, name := range names {
			if seen[name] == 0 {
				t.Errorf("%s got none of 30 requests from a pod: %v", name, seen)
			}
		}
	})

	t.Run("hairpin: a pod reaches itself through its Service", func(t *testing.T) {
		addr := net.JoinHostPort(self.Spec.ClusterIP, "80")
		waitGet(t, addr, 30*time.Second)
		pid := podPID(t, mustGetPod(t, cs, "web-0"))
		for i := 0; i < 5; i++ {
			if body, err := podGet(pid, addr); err != nil || body != "web-0" {
				t.Fatalf("web-0 through its own Service: %q, %v", body, err)
			}
		}
	})

	t.Run("NodePort on the node IP", func(t *testing.T) {
		if nodeIP == "" {
			t.Fatal("node has no InternalIP")
		}
		addr := net.JoinHostPort(nodeIP, fmt.Sprint(web.Spec.Ports[0].NodePort))
		body := waitGet(t, addr, 10*time.Second)
		if !strings.HasPrefix(body, "web-") {
			t.Errorf("NodePort %s answered %q", addr, body)
		}
		if body, err := podGet(clientPID, addr); err != nil || !strings.HasPrefix(body, "web-") {
			t.Errorf("NodePort from a pod: %q, %v", body, err)
		}
	})

	t.Run("LoadBalancer ingress IP with ClientIP affinity", func(t *testing.T) {
		lb := service("lb", map[string]string{"app": "web"}, corev1.ServiceTypeLoadBalancer)
		lb.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		// An external load balancer's class: the built-in ServiceLB leaves
		// the Service alone and this test plays that load balancer.
		class := "example.test/lb"
		lb.Spec.LoadBalancerClass = &class
		lb = createSvc(t, cs, lb)
		// TEST-NET-3: on no interface here; only the proxy's rules answer it.
		ip := fmt.Sprintf("203.0.113.%d", 1+n%250)
		lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		if _, err := cs.CoreV1().Services("default").UpdateStatus(ctx, lb, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort(ip, "80")
		first := waitGet(t, addr, 10*time.Second)
		for i := 0; i < 20; i++ {
			if body, err := get(addr); err != nil || body != first {
				t.Fatalf("request %d to the LoadBalancer IP with ClientIP affinity: %q, %v; want %q every time", i, body, err, first)
			}
		}
		// The ClusterIP path shares the affinity (same client, same endpoint).
		if body, err := get(net.JoinHostPort(lb.Spec.ClusterIP, "80")); err != nil || body != first {
			t.Errorf("ClusterIP of the affine Service: %q, %v; want %q", body, err, first)
		}
		if err := cs.CoreV1().Services("default").Delete(ctx, "lb", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a Service without endpoints refuses at once", func(t *testing.T) {
		none := createSvc(t, cs, service("none", map[string]string{"app": "nothing"}, corev1.ServiceTypeNodePort))
		addr := net.JoinHostPort(none.Spec.ClusterIP, "80")
		assertRefused(t, addr, 10*time.Second)
		assertRefused(t, net.JoinHostPort(nodeIP, fmt.Sprint(none.Spec.Ports[0].NodePort)), 10*time.Second)
		t0 := time.Now()
		_, err := podGet(clientPID, addr)
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(t0) > time.Second {
			t.Errorf("from a pod, a Service without endpoints: %v after %v; want connection refused at once", err, time.Since(t0))
		}
	})

	t.Run("UDP entries to an endpoint that left the Service are cleared", func(t *testing.T) {
		u := service("udp", map[string]string{"app": "web"}, corev1.ServiceTypeClusterIP)
		u.Spec.Ports = []corev1.ServicePort{{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(9053)}}
		u = createSvc(t, cs, u)
		podIP := map[string]string{} // IP → pod name
		for _, name := range names {
			podIP[mustGetPod(t, cs, name).Status.PodIP] = name
		}
		// Each datagram from a new socket (a new source port) is a new
		// flow the rules send to a random endpoint; nothing answers, so
		// the entries stay (unreplied UDP: 30 s) unless removed.
		var byPod map[string]int
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			for i := 0; i < 30; i++ {
				c, err := net.Dial("udp", net.JoinHostPort(u.Spec.ClusterIP, "53"))
				if err != nil {
					t.Fatal(err)
				}
				c.Write([]byte("x"))
				c.Close()
			}
			byPod = udpFlows(t, u.Spec.ClusterIP, 53, podIP)
			if len(byPod) >= 2 || time.Now().After(deadline) {
				break
			}
		}
		t.Logf("UDP flows by endpoint: %v", byPod)
		if len(byPod) < 2 {
			t.Fatalf("30 UDP flows to %s:53 reached fewer than two pods: %v", u.Spec.ClusterIP, byPod)
		}
		// Only web-1 stays behind the Service.
		u.Spec.Selector = map[string]string{"name": "web-1"}
		if _, err := cs.CoreV1().Services("default").Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			byPod = udpFlows(t, u.Spec.ClusterIP, 53, podIP)
			if len(byPod) == 0 || len(byPod) == 1 && byPod["web-1"] > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("5s after web-0 and web-2 left the UDP Service, flows to them remain: %v", byPod)
			}
		}
		if err := cs.CoreV1().Services("default").Delete(ctx, "udp", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("deleted pod leaves rotation; new Ready pod joins within 1s", func(t *testing.T) {
		if err := cs.CoreV1().Pods("default").Delete(ctx, "web-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// web-0 must stop getting new connections.
		deadline := time.Now().Add(15 * time.Second)
		for streak := 0; streak < 30; {
			if time.Now().After(deadline) {
				t.Fatalf("web-0 still in rotation 15s after its deletion")
			}
			body, err := get(webAddr)
			switch {
			case err != nil:
				t.Fatalf("during web-0's deletion: %v", err)
			case body == "web-0":
				streak = 0
			default:
				streak++
			}
		}
		// Once it is gone, its own Service has no endpoint at all.
		assertRefused(t, net.JoinHostPort(self.Spec.ClusterIP, "80"), 30*time.Second)

		// A new pod: hammer the ClusterIP and note when web-3 first answers.
		var mu sync.Mutex
		var joined time.Time
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if body, err := get(webAddr); err == nil && body == "web-3" {
					mu.Lock()
					if joined.IsZero() {
						joined = time.Now()
					}
					mu.Unlock()
				}
			}
		}()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, webPod("web-3"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var readyAt time.Time
		for deadline := time.Now().Add(2 * time.Minute); readyAt.IsZero(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("web-3 not Ready within 2m")
			}
			if p, err := cs.CoreV1().Pods("default").Get(ctx, "web-3", metav1.GetOptions{}); err == nil && framework.PodReady(p) {
				readyAt = time.Now()
			}
		}
		time.Sleep(3 * time.Second)
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		if joined.IsZero() {
			t.Fatal("web-3 never answered within 3s of becoming Ready")
		}
		lag := joined.Sub(readyAt)
		t.Logf("web-3 answered %v after the API showed it Ready", lag.Round(time.Millisecond))
		if lag > 1500*time.Millisecond { // 1 s + slack for a loaded machine
			t.Errorf("web-3 joined %v after becoming Ready, want ≤ 1 s", lag)
		}
	})

	t.Run("agent restart removes rules of a Service deleted meanwhile", func(t *testing.T) {
		gone := createSvc(t, cs, service("gone", map[string]string{"app": "web"}, corev1.ServiceTypeClusterIP))
		waitGet(t, net.JoinHostPort(gone.Spec.ClusterIP, "80"), 10*time.Second)
		a.Stop()
		if !strings.Contains(nftTable(t, table), gone.Spec.ClusterIP) {
			t.Fatal("the proxy's rules did not survive the agent's stop")
		}
		if err := cs.CoreV1().Services("default").Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		a.Start()
		if s := nftTable(t, table); strings.Contains(s, gone.Spec.ClusterIP) {
			t.Errorf("rules of the deleted Service %s survived the agent's restart", gone.Spec.ClusterIP)
		}
		if _, err := get(webAddr); err != nil {
			t.Errorf("web after the restart: %v", err)
		}
	})
}

func mustGetPod(t *testing.T, cs kubernetes.Interface, name string) *corev1.Pod {
	t.Helper()
	p, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// assertRefused waits until addr refuses a connection and checks the
// refusal is immediate (not a timeout).
func assertRefused(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		t0 := time.Now()
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		took := time.Since(t0)
		if err == nil {
			c.Close()
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			if took > time.Second {
				t.Errorf("%s refused only after %v", addr, took)
			}
			return
		}
	}
	t.Fatalf("%s did not refuse within %v: last %v", addr, within, err)
}

// udpFlows counts the UDP conntrack entries to ip:port by the pod they
// were DNATed to (podIP maps pod IPs to names; others count as "other").
func udpFlows(t *testing.T, ip string, port uint16, podIP map[string]string) map[string]int {
	t.Helper()
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatalf("list conntrack: %v", err)
	}
	out := map[string]int{}
	for _, f := range flows {
		if f.Forward.Protocol != unix.IPPROTO_UDP || f.Forward.DstIP.String() != ip || f.Forward.DstPort != port {
			continue
		}
		name, ok := podIP[f.Reverse.SrcIP.String()]
		if !ok {
			name = "other"
		}
		out[name]++
	}
	return out
}
