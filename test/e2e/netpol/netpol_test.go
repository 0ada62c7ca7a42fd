package netpol

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

const (
	nsWeb     = "np-web"     // the servers
	nsFriends = "np-friends" // labelled access=yes
	nsOthers  = "np-others"
)

type env struct {
	t     *testing.T
	cs    kubernetes.Interface
	k     *framework.Kubectl
	table string
	ips   map[string]string // "ns/name" → pod IP
}

func TestNetworkPolicy(t *testing.T) {
	framework.RequireRoot(t)
	n := os.Getpid()
	cidr := fmt.Sprintf("10.%d.0.0/16", 20+(n+61)%80)
	table := fmt.Sprintf("skf-np-%d", n%100000)
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", table).Run() })
	srv := framework.StartServer(t, "--cluster-cidr", cidr)
	cs := srv.Client()
	ctx := framework.Context(t, 10*time.Minute)
	const node = "netpol-e2e"
	a := framework.StartAgent(t, srv, node, fmt.Sprintf("skf%d", n%100000), "--netpol-table", table)
	out, err := exec.Command(framework.Binary(t), "image", "import", "--data-dir", a.DataDir, framework.BusyboxTarball(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+framework.BusyboxImage) {
		t.Fatalf("skiff image import: %v: %s", err, out)
	}
	e := &env{t: t, cs: cs, k: srv.NewKubectl(t, framework.DefaultKubectl), table: table, ips: map[string]string{}}
	for name, lbls := range map[string]map[string]string{nsWeb: {"role": "web"}, nsFriends: {"access": "yes"}, nsOthers: nil} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		zero := int64(0)
		for _, ns := range []string{nsWeb, nsFriends, nsOthers} {
			cs.CoreV1().Pods(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		}
	})
	// Servers: httpd on 8080 (named http) and 9090 (named alt); readiness
	// by an httpGet probe from the node every second.
	for _, name := range []string{"web", "web2"} {
		p := framework.BusyboxPod(name, "sh", "-c", "echo "+name+" >/tmp/index.html; httpd -p 9090 -h /tmp; exec httpd -f -p 8080 -h /tmp")
		p.Namespace, p.Labels, p.Spec.NodeName = nsWeb, map[string]string{"app": name}, node
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "alt", ContainerPort: 9090}}
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 1,
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}}
		e.create(p)
	}
	for _, ns := range []string{nsWeb, nsFriends, nsOthers} {
		p := framework.BusyboxPod("client", "sleep", "3600")
		p.Namespace, p.Labels, p.Spec.NodeName = ns, map[string]string{"app": "client"}, node
		e.create(p)
	}
	for _, key := range []string{nsWeb + "/web", nsWeb + "/web2", nsWeb + "/client", nsFriends + "/client", nsOthers + "/client"} {
		e.ips[key] = e.waitReady(key).Status.PodIP
	}
	web := "http://" + e.ips[nsWeb+"/web"]

	// No policy: everything flows.
	e.expect(nsFriends, web+":8080", true)
	e.expect(nsOthers, web+":9090", true)

	t.Run("DefaultDenyIngress", func(t *testing.T) {
		e := e.with(t)
		start := time.Now()
		e.apply(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: nsWeb, Name: "deny"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}})
		e.waitIsolated("ingress-isolated", e.ips[nsWeb+"/web"], true)
		t.Logf("default deny in place %v after create", time.Since(start).Round(time.Millisecond))
		e.expect(nsFriends, web+":8080", false)
		e.expect(nsOthers, web+":8080", false)
		e.expect(nsWeb, web+":8080", false) // same namespace, same bridge
		// The node reaches its pods: the probe keeps the pod Ready and
		// the host connects.
		time.Sleep(3 * time.Second)
		if p := e.pod(nsWeb + "/web"); !framework.PodReady(p) {
			t.Errorf("web not Ready under default deny: the node's probe was blocked: %+v", p.Status.Conditions)
		}
		conn, err := net.DialTimeout("tcp", e.ips[nsWeb+"/web"]+":8080", 2*time.Second)
		if err != nil {
			t.Errorf("host → pod under default deny: %v", err)
		} else {
			conn.Close()
		}
	})

	t.Run("AllowFromNamespace", func(t *testing.T) {
		e := e.with(t)
		e.apply(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: nsWeb, Name: "from-friends"},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
					{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"access": "yes"}}}}}}}})
		e.eventually(nsFriends, web+":8080", true)
		e.expect(nsFriends, web+":9090", true)
		e.expect(nsOthers, web+":8080", false)
		e.expect(nsWeb, web+":8080", false)
	})

	t.Run("AllowOnePort", func(t *testing.T) {
		e := e.with(t)
		e.delete(nsWeb, "from-friends")
		e.apply(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: nsWeb, Name: "http-only"},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"access": "yes"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromString("http"))}}}}}})
		e.eventually(nsFriends, web+":8080", true)
		e.expect(nsFriends, web+":9090", false)
		e.expect(nsOthers, web+":8080", false)
		// A numeric port of the other server, which the named port does
		// not cover.
		e.expect(nsFriends, "http://"+e.ips[nsWeb+"/web2"]+":9090", false)
	})

	t.Run("DeleteRestores", func(t *testing.T) {
		e := e.with(t)
		start := time.Now()
		e.delete(nsWeb, "http-only")
		e.delete(nsWeb, "deny")
		e.waitIsolated("ingress-isolated", e.ips[nsWeb+"/web"], false)
		t.Logf("rules gone %v after the delete", time.Since(start).Round(time.Millisecond))
		if d := time.Since(start); d > time.Second {
			t.Errorf("policies deleted, rules still there after %v", d)
		}
		e.expect(nsOthers, web+":9090", true)
		t.Logf("traffic flows again %v after the delete", time.Since(start).Round(time.Millisecond))
	})

	t.Run("EgressDeny", func(t *testing.T) {
		e := e.with(t)
		e.apply(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: nsFriends, Name: "no-egress"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}})
		e.waitIsolated("egress-isolated", e.ips[nsFriends+"/client"], true)
		e.expect(nsFriends, web+":8080", false)
		e.expect(nsOthers, web+":8080", true)
	})

	t.Run("EgressIPBlockExcept", func(t *testing.T) {
		e := e.with(t)
		nd, err := e.cs.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.apply(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: nsFriends, Name: "ipblock"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
					CIDR: nd.Spec.PodCIDR, Except: []string{e.ips[nsWeb+"/web"] + "/32"}}}}}}}})
		e.eventually(nsFriends, "http://"+e.ips[nsWeb+"/web2"]+":8080", true)
		e.expect(nsFriends, web+":8080", false)
		e.delete(nsFriends, "ipblock")
		e.delete(nsFriends, "no-egress")
		e.eventually(nsFriends, web+":8080", true)
	})

	t.Run("AgentRestart", func(t *testing.T) {
		e := e.with(t)
		e.apply(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: nsWeb, Name: "deny-again"},
			Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}})
		e.waitIsolated("ingress-isolated", e.ips[nsWeb+"/web"], true)
		// The table outlives the agent: pods keep running, so must their
		// policies.
		a.Stop()
		e.waitIsolated("ingress-isolated", e.ips[nsWeb+"/web"], true)
		a.Start()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(a.Logs(), "full=true") < 2 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := strings.Count(a.Logs(), "full=true"); n < 2 {
			t.Errorf("%d full rebuilds in the agent log, want one per start", n)
		}
		e.waitIsolated("ingress-isolated", e.ips[nsWeb+"/web"], true)
		e.eventually(nsOthers, web+":8080", false)
		e.delete(nsWeb, "deny-again")
		e.eventually(nsOthers, web+":8080", true)
	})

	if t.Failed() {
		out, _ := exec.Command("nft", "list", "table", "inet", table).CombinedOutput()
		t.Logf("table at the end:\n%s", out)
	}
}

func ptr[T any](v T) *T { return &v }

func (e *env) with(t *testing.T) *env {
	c := *e
	c.t, c.k = t, e.k.With(t)
	return &c
}

func (e *env) create(p *corev1.Pod) {
	e.t.Helper()
	// The namespace's default ServiceAccount may not exist yet.
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, err = e.cs.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err == nil {
			return
		}
	}
	e.t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
}

func (e *env) pod(key string) *corev1.Pod {
	e.t.Helper()
	ns, name, _ := strings.Cut(key, "/")
	p, err := e.cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) waitReady(key string) *corev1.Pod {
	e.t.Helper()
	var p *corev1.Pod
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if p = e.pod(key); framework.PodReady(p) && p.Status.PodIP != "" {
			return p
		}
	}
	e.t.Fatalf("pod %s not ready: %+v", key, p.Status)
	return nil
}

func (e *env) apply(np *networkingv1.NetworkPolicy) {
	e.t.Helper()
	if _, err := e.cs.NetworkingV1().NetworkPolicies(np.Namespace).Create(context.Background(), np, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) delete(ns, name string) {
	e.t.Helper()
	if err := e.cs.NetworkingV1().NetworkPolicies(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatal(err)
	}
}

// wget fetches url from the client pod of ns, giving up after 2 s (exit
// 143). Debian's busybox-static wget crashes with -T, hence timeout(1).
func (e *env) wget(ns, url string) (string, error) {
	r := e.k.Run("exec", "-n", ns, "client", "--", "timeout", "2", "wget", "-qO-", url)
	if r.Err != nil {
		return r.Stdout + r.Stderr, r.Err
	}
	return r.Stdout, nil
}

// expect checks once that the client of ns can (or cannot) fetch url.
func (e *env) expect(ns, url string, ok bool) {
	e.t.Helper()
	out, err := e.wget(ns, url)
	switch {
	case ok && err != nil:
		e.t.Errorf("%s client → %s: want allowed, got %v: %s", ns, url, err, out)
	case !ok && err == nil:
		e.t.Errorf("%s client → %s: want blocked, got %q", ns, url, out)
	case !ok && !strings.Contains(out, "exit code 143"):
		e.t.Errorf("%s client → %s: want a time-out (dropped), got %v: %s", ns, url, err, out)
	}
}

// eventually waits up to 10 s for the client of ns to be allowed (or not).
func (e *env) eventually(ns, url string, ok bool) {
	e.t.Helper()
	var out string
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if out, err = e.wget(ns, url); (err == nil) == ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Errorf("%s client → %s: want allowed=%v within 10s, last: %v: %s", ns, url, ok, err, out)
}

// waitIsolated waits until the enforcer's set holds (or no longer holds) ip.
func (e *env) waitIsolated(set, ip string, want bool) {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		out, err := exec.Command("nft", "list", "set", "inet", e.table, set).CombinedOutput()
		if err != nil {
			continue
		}
		s := string(out)
		present := strings.Contains(s, " "+ip+" ") || strings.Contains(s, " "+ip+",") || strings.Contains(s, " "+ip+"\n")
		if present == want {
			return
		}
	}
	e.t.Fatalf("set %s: %s present=%v not reached within 10s", set, ip, want)
}
