package dns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func until(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, d, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func podLog(ctx context.Context, cs kubernetes.Interface, name string) string {
	b, err := cs.CoreV1().Pods("default").GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// lookup asks server for name's A records from the host.
func lookup(server, name string) ([]string, int, error) { return lookupNet("udp", server, name) }

func lookupNet(network, server, name string) ([]string, int, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, net.JoinHostPort(server, "53"))
	if err != nil {
		return nil, 0, err
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out, r.Rcode, nil
}

func TestClusterDNS(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	cidr := fmt.Sprintf("10.%d.0.0/16", 200+(n+7)%50)
	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 6*time.Minute)

	// The kube-dns Service: 10th address of the default service CIDR, no
	// selector, K3s's labels.
	svc, err := cs.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("kube-dns service: %v", err)
	}
	if svc.Spec.ClusterIP != "10.43.0.10" || svc.Spec.Selector != nil || svc.Labels["k8s-app"] != "kube-dns" ||
		svc.Labels["kubernetes.io/name"] != "CoreDNS" || len(svc.Spec.Ports) != 2 ||
		svc.Spec.Ports[0].Name != "dns" || svc.Spec.Ports[0].Protocol != corev1.ProtocolUDP || svc.Spec.Ports[0].Port != 53 ||
		svc.Spec.Ports[1].Name != "dns-tcp" || svc.Spec.Ports[1].Protocol != corev1.ProtocolTCP || svc.Spec.Ports[1].Port != 53 {
		t.Errorf("kube-dns service: labels %v spec %+v", svc.Labels, svc.Spec)
	}

	const node = "dns-e2e"
	begin := time.Now()
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("skd%d", n%100000))
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, podNet, err := net.ParseCIDR(nd.Spec.PodCIDR)
	if err != nil {
		t.Fatalf("node podCIDR %q: %v", nd.Spec.PodCIDR, err)
	}
	gw := podNet.IP.To4()
	gw[3]++
	gwIP := gw.String()

	// The node's kube-dns EndpointSlice lists the gateway, Ready, before
	// any pod runs.
	var slice *discoveryv1.EndpointSlice
	until(t, 60*time.Second, "kube-dns EndpointSlice of "+node, func() (bool, string) {
		slice, err = cs.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns-"+node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		e := slice.Endpoints
		return len(e) == 1 && len(e[0].Addresses) == 1 && e[0].Addresses[0] == gwIP && e[0].Conditions.Ready != nil && *e[0].Conditions.Ready,
			fmt.Sprintf("%+v", slice.Endpoints)
	})
	t.Logf("kube-dns EndpointSlice ready %v after the agent started", time.Since(begin).Round(time.Millisecond))
	if slice.Labels[discoveryv1.LabelServiceName] != "kube-dns" || slice.Labels[discoveryv1.LabelManagedBy] == "endpointslice-controller.k8s.io" ||
		len(slice.Ports) != 2 || *slice.Ports[0].Port != 53 || *slice.Endpoints[0].NodeName != node {
		t.Errorf("kube-dns slice: labels %v ports %+v endpoints %+v", slice.Labels, slice.Ports, slice.Endpoints)
	}

	// From the host: the kubernetes Service resolves at the gateway; an
	// outside name is forwarded (answered, whatever the answer).
	ips, rcode, err := lookup(gwIP, "kubernetes.default.svc.cluster.local")
	if err != nil || rcode != mdns.RcodeSuccess || len(ips) != 1 || ips[0] != "10.43.0.1" {
		t.Errorf("host lookup of kubernetes.default.svc.cluster.local at %s: %v rcode %d err %v", gwIP, ips, rcode, err)
	}
	if _, rcode, err = lookup(gwIP, "nosuch.default.svc.cluster.local"); err != nil || rcode != mdns.RcodeNameError {
		t.Errorf("lookup of a missing service: rcode %d err %v, want NXDOMAIN", rcode, err)
	}

	// A pod with the default dnsPolicy: resolv.conf names the cluster DNS,
	// and nslookup at the bridge gateway answers with the Service IP.
	script := "cat /etc/resolv.conf; echo ---; nslookup kubernetes.default.svc.cluster.local " + gwIP + "; echo ---; sleep 3600"
	if _, err := cs.CoreV1().Pods("default").Create(ctx, framework.BusyboxPod("resolv", "sh", "-c", script), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, cs, "resolv", 90*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	var logs string
	until(t, 30*time.Second, "resolv's output", func() (bool, string) {
		logs = podLog(ctx, cs, "resolv")
		return strings.Count(logs, "---") >= 2, logs
	})
	t.Logf("pod resolv:\n%s", logs)
	conf, lookupOut, _ := strings.Cut(logs, "---")
	for _, want := range []string{"nameserver 10.43.0.10", "search default.svc.cluster.local svc.cluster.local cluster.local", "options ndots:5"} {
		if !strings.Contains(conf, want) {
			t.Errorf("resolv.conf of a ClusterFirst pod lacks %q:\n%s", want, conf)
		}
	}
	if strings.Count(conf, "nameserver") != 1 {
		t.Errorf("resolv.conf of a ClusterFirst pod has other nameservers:\n%s", conf)
	}
	if !strings.Contains(lookupOut, "Address: 10.43.0.1") && !strings.Contains(lookupOut, "Address 1: 10.43.0.1") {
		t.Errorf("nslookup kubernetes.default.svc.cluster.local in the pod:\n%s", lookupOut)
	}

	// A Service created later resolves from inside the pod.
	web := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	web, err = cs.CoreV1().Services("default").Create(ctx, web, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k := srv.NewKubectl(t, framework.DefaultKubectl)
	until(t, 30*time.Second, "web.default.svc.cluster.local from the pod", func() (bool, string) {
		r := k.Run("exec", "resolv", "--", "nslookup", "web.default.svc.cluster.local", gwIP)
		return r.Err == nil && strings.Contains(r.Stdout, web.Spec.ClusterIP), r.Stdout + r.Stderr
	})
	// Over TCP too (port dns-tcp).
	if ips, rcode, err := lookupNet("tcp", gwIP, "web.default.svc.cluster.local"); err != nil || rcode != mdns.RcodeSuccess ||
		len(ips) != 1 || ips[0] != web.Spec.ClusterIP {
		t.Errorf("TCP lookup of web.default.svc.cluster.local: %v rcode %d err %v", ips, rcode, err)
	}

	// dnsPolicy None with dnsConfig: exactly the pod's config.
	none := framework.BusyboxPod("none", "sh", "-c", "cat /etc/resolv.conf; echo ---; sleep 3600")
	two := "2"
	none.Spec.DNSPolicy = corev1.DNSNone
	none.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.53"}, Searches: []string{"example.test"},
		Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, none, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, cs, "none", 60*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	until(t, 30*time.Second, "none's output", func() (bool, string) {
		logs = podLog(ctx, cs, "none")
		return strings.Contains(logs, "---"), logs
	})
	for _, want := range []string{"nameserver 192.0.2.53", "search example.test", "options ndots:2"} {
		if !strings.Contains(logs, want) {
			t.Errorf("resolv.conf of a dnsPolicy None pod lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "10.43.0.10") || strings.Count(logs, "nameserver") != 1 {
		t.Errorf("resolv.conf of a dnsPolicy None pod:\n%s", logs)
	}

	// Query latency at the node's DNS server, from the host.
	const queries = 200
	start := time.Now()
	for range queries {
		if _, _, err := lookup(gwIP, "web.default.svc.cluster.local"); err != nil {
			t.Fatalf("lookup: %v", err)
		}
	}
	t.Logf("%d cluster lookups from the host: %v each", queries, (time.Since(start) / queries).Round(time.Microsecond))

	// A clean agent stop removes the node's slice.
	zero := int64(0)
	cs.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	until(t, 60*time.Second, "pods gone", func() (bool, string) {
		l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0, fmt.Sprint(err)
	})
	a.Stop()
	if _, err := cs.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns-"+node, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("kube-dns slice after the agent stopped: %v, want NotFound", err)
	}
}
