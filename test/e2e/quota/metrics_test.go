package quota

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestSyncMetrics: the standalone manager serves per-controller sync
// metrics on --metrics-bind-address.
func TestSyncMetrics(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "metrics")
	// Give the key-driven controllers something to sync.
	if _, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"pods": mustQ("1")}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	createPDB(t, ctx, cs, ns, "m", map[string]string{"app": "none"}, &one, nil)
	var body string
	eventually(t, 60*time.Second, "sync metrics of the three controllers", func() (bool, error) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err
		}
		body = string(b)
		for _, c := range []string{"podgc", "resourcequota", "disruption"} {
			for _, m := range []string{"skiff_controller_sync_total", "skiff_controller_sync_duration_seconds_count"} {
				if !strings.Contains(body, m+`{controller="`+c+`"}`) {
					return false, errorf("no %s for %s", m, c)
				}
			}
		}
		return true, nil
	})
	if !strings.Contains(body, "# TYPE skiff_controller_sync_duration_seconds histogram") {
		t.Error("sync duration is not a histogram")
	}
}
