package controllers_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

const waitFor = 10 * time.Second

// suffix keeps names unique when a test runs more than once against the
// package's one server (go test -count).
func suffix() string { return fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff) }

// eventually polls cond until it returns "" (done) or the deadline passes,
// then fails with cond's last complaint.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %s", what, waitFor, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setStatus plays the kubelet: the pod runs with ip and the given
// readiness.
func setStatus(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name, ip string, ready bool) {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	p.Status.HostIP = "192.0.2.10"
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: st, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: st, LastTransitionTime: now},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update status of %s: %v", name, err)
	}
}

// endpointsState renders Endpoints as "ready=[ips] notready=[ips]".
func endpointsState(ep *corev1.Endpoints) string {
	var ready, notReady []string
	for _, ss := range ep.Subsets {
		for _, a := range ss.Addresses {
			ready = append(ready, a.IP)
		}
		for _, a := range ss.NotReadyAddresses {
			notReady = append(notReady, a.IP)
		}
	}
	sort.Strings(ready)
	sort.Strings(notReady)
	return fmt.Sprintf("ready=%v notready=%v", ready, notReady)
}

// slicesState renders a Service's slices as sorted
// "ip:ready/serving/terminating@zone" entries.
func slicesState(ss []discoveryv1.EndpointSlice) string {
	var out []string
	for _, s := range ss {
		for _, ep := range s.Endpoints {
			c := ep.Conditions
			zone := ""
			if ep.Zone != nil {
				zone = *ep.Zone
			}
			out = append(out, fmt.Sprintf("%s:%t/%t/%t@%s", strings.Join(ep.Addresses, ","), *c.Ready, *c.Serving, *c.Terminating, zone))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestEndpointControllers(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, 2*time.Minute)
	ns, nodeName := "endpoints-e2e-"+suffix(), "ep-node-"+suffix()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, cs, node.Name)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{"web-1": "10.244.7.11", "web-2": "10.244.7.12"}
	for name := range ips {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "pause",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(t, ctx, cs, ns, "web-1", ips["web-1"], true)
	setStatus(t, ctx, cs, ns, "web-2", ips["web-2"], false)

	expect := func(what, wantEP, wantSlices string) {
		t.Helper()
		eventually(t, what+": endpoints", func() string {
			ep, err := cs.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err.Error()
			}
			if got := endpointsState(ep); got != wantEP {
				return fmt.Sprintf("got %s, want %s", got, wantEP)
			}
			for _, ss := range ep.Subsets {
				for _, p := range ss.Ports {
					if p.Port != 8080 || p.Name != "http" {
						return fmt.Sprintf("port %+v, want http 8080", p)
					}
				}
			}
			return ""
		})
		eventually(t, what+": endpointslices", func() string {
			l, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
			if err != nil {
				return err.Error()
			}
			if got := slicesState(l.Items); got != wantSlices {
				return fmt.Sprintf("got %q, want %q", got, wantSlices)
			}
			for _, s := range l.Items {
				if s.Labels[discoveryv1.LabelManagedBy] != "endpointslice-controller.k8s.io" || s.AddressType != discoveryv1.AddressTypeIPv4 ||
					metav1.GetControllerOf(&s) == nil || metav1.GetControllerOf(&s).Name != "web" {
					return fmt.Sprintf("slice metadata %+v", s.ObjectMeta)
				}
			}
			return ""
		})
	}

	expect("one ready, one not", "ready=[10.244.7.11] notready=[10.244.7.12]",
		"10.244.7.11:true/true/false@zone-a 10.244.7.12:false/false/false@zone-a")

	setStatus(t, ctx, cs, ns, "web-2", ips["web-2"], true)
	expect("both ready", "ready=[10.244.7.11 10.244.7.12] notready=[]",
		"10.244.7.11:true/true/false@zone-a 10.244.7.12:true/true/false@zone-a")

	k := srv.NewKubectl(t, framework.DefaultKubectl)
	out := k.MustRun("get", "endpoints,endpointslices", "-n", ns)
	for _, want := range []string{"10.244.7.11:8080", "IPv4", "8080", "web-"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get endpoints,endpointslices lacks %q:\n%s", want, out)
		}
	}

	// Graceful deletion without a kubelet leaves the pod terminating: out
	// of Endpoints, terminating (still serving) in the slice.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("terminating", "ready=[10.244.7.12] notready=[]",
		"10.244.7.11:false/true/true@zone-a 10.244.7.12:true/true/false@zone-a")

	zero := int64(0)
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "web-1", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	expect("pod gone", "ready=[10.244.7.12] notready=[]", "10.244.7.12:true/true/false@zone-a")

	if err := cs.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service deleted", func() string {
		if _, err := cs.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("endpoints still there (%v)", err)
		}
		l, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return err.Error()
		}
		if len(l.Items) != 0 {
			return fmt.Sprintf("%d slices left", len(l.Items))
		}
		return ""
	})
}

// A Service without a selector keeps the Endpoints and slices its user
// writes; a headless one gets address-only endpoints.
func TestEndpointsSelectorlessAndHeadless(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns, nodeName := "endpoints-hl-"+suffix(), "ep-node-hl-"+suffix()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, cs, node.Name)
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, ext, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	userEP := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: ns},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.50"}}, Ports: []corev1.EndpointPort{{Port: 5432}}}}}
	if _, err := cs.CoreV1().Endpoints(ns).Create(ctx, userEP, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	hl := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, hl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: ns, Labels: map[string]string{"app": "db"}},
		Spec: corev1.PodSpec{NodeName: nodeName, Hostname: "db-0", Subdomain: "db", Containers: []corev1.Container{{Name: "c", Image: "pause"}}}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setStatus(t, ctx, cs, ns, "db-0", "10.244.8.1", true)
	eventually(t, "headless endpoints", func() string {
		ep, err := cs.CoreV1().Endpoints(ns).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if _, ok := ep.Labels[corev1.IsHeadlessService]; !ok {
			return fmt.Sprintf("labels %v", ep.Labels)
		}
		if len(ep.Subsets) != 1 || len(ep.Subsets[0].Ports) != 0 || len(ep.Subsets[0].Addresses) != 1 || ep.Subsets[0].Addresses[0].Hostname != "db-0" {
			return fmt.Sprintf("subsets %+v", ep.Subsets)
		}
		return ""
	})

	// By now the controllers have seen the selector-less Service too.
	ep, err := cs.CoreV1().Endpoints(ns).Get(ctx, "ext", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := endpointsState(ep); got != "ready=[192.0.2.50] notready=[]" {
		t.Errorf("user endpoints of a selector-less service changed: %s", got)
	}
	l, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=ext"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 0 {
		t.Errorf("controller made slices for a selector-less service: %+v", l.Items)
	}
}
