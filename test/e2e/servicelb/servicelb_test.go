// Package servicelb_test runs a real `skiff server` with `skiff
// hollow-nodes` and checks the ServiceLB controller: a LoadBalancer Service
// gets the Ready nodes' InternalIPs as ingress, kept current as nodes come
// and go; with --service-lb-pool, each Service gets its own address, freed
// when the Service goes.
package servicelb_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

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

// readyIPs is the sorted InternalIPs of the Ready nodes with prefix.
func readyIPs(ctx context.Context, cs kubernetes.Interface, prefix string) []string {
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range list.Items {
		if !strings.HasPrefix(n.Name, prefix) {
			continue
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				for _, a := range n.Status.Addresses {
					if a.Type == corev1.NodeInternalIP {
						out = append(out, a.Address)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func ingressIPs(ctx context.Context, cs kubernetes.Interface, name string) ([]string, error) {
	s, err := cs.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range s.Status.LoadBalancer.Ingress {
		if i.IPMode == nil || *i.IPMode != corev1.LoadBalancerIPModeVIP {
			return nil, fmt.Errorf("ingress %+v: ipMode is not VIP", i)
		}
		out = append(out, i.IP)
	}
	slices.Sort(out)
	return out, nil
}

func lbService(name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
}

func TestServiceLBNodeAddresses(t *testing.T) {
	srv := framework.StartServer(t)
	cs := srv.Client()
	ctx := framework.Context(t, 3*time.Minute)
	framework.StartHollowNodes(t, srv.Kubeconfig, "--count", "2", "--name-prefix", "lb-a-")
	until(t, 30*time.Second, "2 Ready nodes", func() (bool, string) {
		ips := readyIPs(ctx, cs, "lb-a-")
		return len(ips) == 2, fmt.Sprint(ips)
	})
	if _, err := cs.CoreV1().Services("default").Create(ctx, lbService("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	until(t, 20*time.Second, "web's ingress = the node IPs", func() (bool, string) {
		got, err := ingressIPs(ctx, cs, "web")
		want := readyIPs(ctx, cs, "lb-")
		return err == nil && slices.Equal(got, want), fmt.Sprintf("ingress %v err %v, nodes %v", got, err, want)
	})
	t.Logf("LoadBalancer ingress set %v after create", time.Since(begin).Round(time.Millisecond))

	// kubectl shows the addresses as EXTERNAL-IP.
	out := srv.NewKubectl(t, framework.DefaultKubectl).MustRun("get", "service", "web")
	for _, ip := range readyIPs(ctx, cs, "lb-") {
		if !strings.Contains(out, ip) {
			t.Errorf("kubectl get service web does not show %s:\n%s", ip, out)
		}
	}

	// A node joins (written directly, Ready): its address is added; it
	// turns NotReady, and then is deleted: removed.
	nd, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "lb-b-0"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setReady := func(st corev1.ConditionStatus) {
		t.Helper()
		// Other controllers (node IPAM, lifecycle) write the node too.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if nd, err = cs.CoreV1().Nodes().Get(ctx, nd.Name, metav1.GetOptions{}); err != nil {
				return err
			}
			now := metav1.Now()
			nd.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, Reason: "Test",
				LastHeartbeatTime: now, LastTransitionTime: now}}
			nd.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.201.0.1"}}
			_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, nd, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setReady(corev1.ConditionTrue)
	until(t, 30*time.Second, "3 addresses", func() (bool, string) {
		got, _ := ingressIPs(ctx, cs, "web")
		want := readyIPs(ctx, cs, "lb-")
		return len(want) == 3 && slices.Equal(got, want), fmt.Sprintf("ingress %v nodes %v", got, want)
	})
	setReady(corev1.ConditionFalse)
	until(t, 30*time.Second, "back to 2 addresses (node NotReady)", func() (bool, string) {
		got, _ := ingressIPs(ctx, cs, "web")
		want := readyIPs(ctx, cs, "lb-a-")
		return slices.Equal(got, want), fmt.Sprintf("ingress %v nodes %v", got, want)
	})
	setReady(corev1.ConditionTrue)
	until(t, 30*time.Second, "3 addresses again", func() (bool, string) {
		got, _ := ingressIPs(ctx, cs, "web")
		return len(got) == 3, fmt.Sprint(got)
	})
	if err := cs.CoreV1().Nodes().Delete(ctx, "lb-b-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	until(t, 30*time.Second, "back to 2 addresses (node deleted)", func() (bool, string) {
		got, _ := ingressIPs(ctx, cs, "web")
		want := readyIPs(ctx, cs, "lb-a-")
		return slices.Equal(got, want), fmt.Sprintf("ingress %v nodes %v", got, want)
	})

	// A Service with a loadBalancerClass is another implementation's.
	other := lbService("other")
	class := "example.com/lb"
	other.Spec.LoadBalancerClass = &class
	if _, err := cs.CoreV1().Services("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A ClusterIP Service gets no ingress either; checked after web's
	// change below shows the controller has caught up.
	svc, err := cs.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	svc.Spec.Ports[0].NodePort = 0
	if _, err := cs.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	until(t, 20*time.Second, "web's ingress cleared after the change to ClusterIP", func() (bool, string) {
		got, err := ingressIPs(ctx, cs, "web")
		return err == nil && len(got) == 0, fmt.Sprint(got, err)
	})
	if got, err := ingressIPs(ctx, cs, "other"); err != nil || len(got) != 0 {
		t.Errorf("Service with a loadBalancerClass: ingress %v err %v", got, err)
	}
}

func TestServiceLBPool(t *testing.T) {
	srv := framework.StartServer(t, "--service-lb-pool", "192.0.2.0/30") // .1 and .2
	cs := srv.Client()
	ctx := framework.Context(t, 3*time.Minute)
	framework.StartHollowNodes(t, srv.Kubeconfig, "--count", "1", "--name-prefix", "lbp-")
	for _, n := range []string{"a", "b", "c"} {
		if _, err := cs.CoreV1().Services("default").Create(ctx, lbService(n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // a and b are the older ones
	}
	got := map[string][]string{}
	until(t, 20*time.Second, "a and b get pool addresses", func() (bool, string) {
		for _, n := range []string{"a", "b", "c"} {
			got[n], _ = ingressIPs(ctx, cs, n)
		}
		return len(got["a"]) == 1 && len(got["b"]) == 1, fmt.Sprint(got)
	})
	if got["a"][0] == got["b"][0] || !slices.Contains([]string{"192.0.2.1", "192.0.2.2"}, got["a"][0]) ||
		!slices.Contains([]string{"192.0.2.1", "192.0.2.2"}, got["b"][0]) {
		t.Errorf("pool addresses: %v", got)
	}
	// c waits with an event: the pool is exhausted.
	until(t, 20*time.Second, "AllocationFailed event for c", func() (bool, string) {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=c"})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Reason == "AllocationFailed" && e.Type == corev1.EventTypeWarning {
				return true, ""
			}
		}
		return false, fmt.Sprint(evs.Items)
	})
	if ips, _ := ingressIPs(ctx, cs, "c"); len(ips) != 0 {
		t.Errorf("c got %v from an exhausted pool", ips)
	}
	// Deleting a frees its address for c.
	freed := got["a"][0]
	if err := cs.CoreV1().Services("default").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	until(t, 20*time.Second, "c gets a's address", func() (bool, string) {
		ips, err := ingressIPs(ctx, cs, "c")
		return err == nil && len(ips) == 1 && ips[0] == freed, fmt.Sprint(ips, err)
	})
	t.Logf("freed address reassigned %v after the delete", time.Since(begin).Round(time.Millisecond))
}
