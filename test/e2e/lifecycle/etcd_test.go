package lifecycle_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// With --etcd-servers the server keeps its state in that etcd cluster: a
// second server with another data dir on the same etcd sees it.
func TestExternalEtcd(t *testing.T) {
	e, flag := framework.StartEtcd(t)
	a := framework.StartServer(t, flag)
	ctx := framework.Context(t, time.Minute)
	if _, err := a.Client().CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.Client().Get(ctx, "/registry/configmaps/default/shared")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("object not in the external etcd: %v %v", resp, err)
	}
	a.Stop()
	b := framework.StartServer(t, flag)
	if _, err := b.Client().CoreV1().ConfigMaps("default").Get(ctx, "shared", metav1.GetOptions{}); err != nil {
		t.Fatalf("second server on the same etcd: %v", err)
	}
}

// After a restart the watch cache starts at the current revision; a watch
// from a revision before that is told 410 Expired, which is what makes a
// client-go reflector re-list.
func TestWatchFromBeforeRestartIsExpired(t *testing.T) {
	s := framework.StartServer(t)
	ctx := framework.Context(t, time.Minute)
	cm, err := s.Client().CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "old"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		cm.Data = map[string]string{"i": string(rune('a' + i))}
		if cm, err = s.Client().CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.Stop()
	s.Start()
	w, err := s.Client().CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: "2"})
	if err != nil {
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			t.Fatalf("watch from before the restart: %v, want 410", err)
		}
		return
	}
	defer w.Stop()
	select {
	case ev := <-w.ResultChan():
		st, ok := ev.Object.(*metav1.Status)
		if ev.Type != watch.Error || !ok || st.Code != 410 {
			t.Fatalf("watch from before the restart: %s %v, want a 410 error", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to a watch from before the restart")
	}
}
