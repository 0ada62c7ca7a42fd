package quota

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }

// TestQuotaUsedFollowsObjects: status.hard mirrors spec.hard and
// status.used follows pods and configmaps as they are created and deleted.
func TestQuotaUsedFollowsObjects(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "quota-used")
	hard := corev1.ResourceList{
		"pods": mustQ("10"), "count/pods": mustQ("10"), "configmaps": mustQ("10"), "count/configmaps": mustQ("10"),
		"requests.cpu": mustQ("4"), "services": mustQ("5"), "count/deployments.apps": mustQ("5"),
	}
	if _, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Configmaps other components may publish in a new namespace count too
	// (the root-ca-cert-publisher's kube-root-ca.crt, once it is there).
	eventually(t, 30*time.Second, "kube-root-ca.crt published", func() (bool, error) {
		_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, err
	})
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := len(cms.Items)
	waitUsed := func(what string, want map[corev1.ResourceName]string) {
		t.Helper()
		eventually(t, 60*time.Second, what, func() (bool, error) {
			q, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "q", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if len(q.Status.Hard) != len(hard) {
				return false, errorf("status.hard %v", q.Status.Hard)
			}
			for r, v := range want {
				got, ok := q.Status.Used[r]
				if !ok || got.Cmp(mustQ(v)) != 0 {
					return false, errorf("used %s = %s, want %s (all: %v)", r, got.String(), v, q.Status.Used)
				}
			}
			return true, nil
		})
	}
	itoa := func(n int) string { return resource.NewQuantity(int64(n), resource.DecimalSI).String() }
	waitUsed("empty usage", map[corev1.ResourceName]string{"pods": "0", "count/pods": "0", "configmaps": itoa(base),
		"count/configmaps": itoa(base), "requests.cpu": "0", "services": "0", "count/deployments.apps": "0"})

	for _, p := range []*corev1.Pod{pod("a", nil, "250m"), pod("b", nil, "500m")} {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"c1", "c2", "c3"} {
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitUsed("usage after creates", map[corev1.ResourceName]string{"pods": "2", "count/pods": "2", "configmaps": itoa(base + 3),
		"count/configmaps": itoa(base + 3), "requests.cpu": "750m"})

	if err := cs.CoreV1().Pods(ns).Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"c1", "c2"} {
		if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitUsed("usage after deletes", map[corev1.ResourceName]string{"pods": "1", "count/pods": "1", "configmaps": itoa(base + 1),
		"count/configmaps": itoa(base + 1), "requests.cpu": "250m"})
}

func mustQInt(n int64) *resource.Quantity { return resource.NewQuantity(n, resource.DecimalSI) }
