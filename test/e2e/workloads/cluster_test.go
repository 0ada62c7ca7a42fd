package workloads

import (
	"fmt"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNamespaceDeletionEmptiesIt: deleting a namespace deletes its content
// (a Deployment with running pods, a ConfigMap), then the namespace.
func TestNamespaceDeletionEmptiesIt(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "doomed")
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("web", 2, "nginx:1", 1, 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "2 running pods", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
		return err == nil && len(pods.Items) == 2, err
	})
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server's namespace check reads its watch cache, so a create
	// racing the delete may still pass (as upstream); soon it is refused,
	// and anything that slipped in is removed with the rest.
	late := 0
	eventually(t, 5*time.Second, "creates in the terminating namespace refused", func() (bool, error) {
		late++
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("late-%d", late)}}, metav1.CreateOptions{})
		return apierrors.IsForbidden(err) || apierrors.IsNotFound(err), err
	})
	eventually(t, 60*time.Second, "namespace gone", func() (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 0 {
		t.Fatalf("pods left behind: %v (%v)", pods, err)
	}
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(cms.Items) != 0 {
		t.Fatalf("config maps left behind: %v (%v)", cms, err)
	}
	rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(rss.Items) != 0 {
		t.Fatalf("replica sets left behind: %v (%v)", rss, err)
	}
}

// TestServiceAccountAndIPAM: every namespace gets a default ServiceAccount;
// every node a distinct podCIDR from the cluster CIDR.
func TestServiceAccountAndIPAM(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "fresh")
	eventually(t, 10*time.Second, "default service account", func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	if err := cs.CoreV1().ServiceAccounts(ns).Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "default service account re-created", func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	_, cluster, _ := net.ParseCIDR("10.42.0.0/16")
	eventually(t, 10*time.Second, "distinct pod CIDRs", func() (bool, error) {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		seen := map[string]bool{}
		for _, n := range list.Items {
			ip, cidr, err := net.ParseCIDR(n.Spec.PodCIDR)
			if err != nil {
				return false, fmt.Errorf("node %s podCIDR %q", n.Name, n.Spec.PodCIDR)
			}
			if ones, _ := cidr.Mask.Size(); ones != 24 || !cluster.Contains(ip) || seen[cidr.String()] {
				return false, fmt.Errorf("node %s podCIDR %s: not a distinct /24 of %s", n.Name, cidr, cluster)
			}
			seen[cidr.String()] = true
		}
		return len(seen) >= nodeCount, nil
	})
}
