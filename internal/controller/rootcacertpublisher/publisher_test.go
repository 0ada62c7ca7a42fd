package rootcacertpublisher

import (
	"context"
	"io"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/controller"
)

const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func TestSync(t *testing.T) {
	ctx := context.Background()
	now := metav1.Now()
	nss := []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "changed"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "good"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "dying", DeletionTimestamp: &now}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}},
	}
	changed := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "changed", Name: ConfigMapName},
		Data: map[string]string{DataKey: "tampered", "extra": "x"}}
	good := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "good", Name: ConfigMapName, ResourceVersion: "7",
		Annotations: map[string]string{descriptionAnnotation: description}}, Data: map[string]string{DataKey: ca}}
	objs := []runtime.Object{changed, good}
	for _, n := range nss {
		objs = append(objs, n)
	}
	cs := fake.NewClientset(objs...)
	inf := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(&controller.Context{Client: cs, Informers: inf, Broadcaster: record.NewBroadcaster(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Options: controller.Options{RootCA: []byte(ca)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.queue.ShutDown()
	for _, n := range nss {
		_ = inf.Core().V1().Namespaces().Informer().GetStore().Add(n)
	}
	_ = inf.Core().V1().ConfigMaps().Informer().GetStore().Add(changed)
	_ = inf.Core().V1().ConfigMaps().Informer().GetStore().Add(good)

	for _, n := range append(nss, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gone"}}) {
		if err := c.sync(ctx, n.Name); err != nil {
			t.Fatalf("sync %s: %v", n.Name, err)
		}
	}
	for _, ns := range []string{"fresh", "changed", "good"} {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, ConfigMapName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", ns, err)
		}
		if len(cm.Data) != 1 || cm.Data[DataKey] != ca || cm.Annotations[descriptionAnnotation] == "" {
			t.Errorf("%s: config map %+v", ns, cm)
		}
	}
	if _, err := cs.CoreV1().ConfigMaps("dying").Get(ctx, ConfigMapName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("terminating namespace got a config map (%v)", err)
	}
	// The one already right is not written again.
	for _, a := range cs.Actions() {
		if a.GetNamespace() == "good" && a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("unneeded write %s in good", a.GetVerb())
		}
	}
}
