package quota

import (
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestQuotaAdmission: creates that would exceed a quota get 403 with
// upstream's message, pods must declare what a quota limits, concurrent
// creates never overshoot, dry runs charge nothing, and room freed by a
// delete is usable again once the controller has recounted.
func TestQuotaAdmission(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "quota-admit")
	// The root-ca-cert-publisher adds kube-root-ca.crt just after the
	// namespace: count it in the base, as upstream's quota e2e does.
	eventually(t, 30*time.Second, "kube-root-ca.crt published", func() (bool, error) {
		_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, err
	})
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := len(cms.Items)
	hard := corev1.ResourceList{"pods": mustQ("3"), "requests.cpu": mustQ("1"),
		"configmaps": *mustQInt(int64(base + 5))}
	if _, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "quota status computed", func() (bool, error) {
		q, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "q", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(q.Status.Used) == len(hard), errorf("used %v", q.Status.Used)
	})
	forbidden := func(err error, want string) {
		t.Helper()
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want 403 containing %q", err, want)
		}
	}
	create := func(p *corev1.Pod, opts metav1.CreateOptions) error {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, p, opts)
		return err
	}
	forbidden(create(pod("nocpu", nil, ""), metav1.CreateOptions{}), "failed quota: q: must specify requests.cpu for: c")
	if err := create(pod("a", nil, "250m"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := create(pod("b", nil, "500m"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	forbidden(create(pod("c", nil, "500m"), metav1.CreateOptions{}),
		"exceeded quota: q, requested: requests.cpu=500m, used: requests.cpu=750m, limited: requests.cpu=1")
	// A dry run is checked but charges nothing.
	if err := create(pod("dry", nil, "200m"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if err := create(pod("d", nil, "200m"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	forbidden(create(pod("e", nil, "10m"), metav1.CreateOptions{}), "exceeded quota: q, requested: pods=1, used: pods=3, limited: pods=3")

	// Twenty concurrent creates against room for five: exactly five land.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, denied := 0, 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "race-"}}, metav1.CreateOptions{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case apierrors.IsForbidden(err):
				denied++
			default:
				t.Errorf("configmap %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if ok != 5 || denied != 15 {
		t.Fatalf("concurrent creates: %d created, %d denied; want 5 and 15", ok, denied)
	}

	// Room freed by a delete comes back once the controller recounts.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "b", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "room after delete", func() (bool, error) {
		err := create(pod("f", nil, "400m"), metav1.CreateOptions{})
		return err == nil, err
	})
}
