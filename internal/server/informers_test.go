package server

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

// TestSharedFactoryOutlivesComponents: a component starting and shutting
// down the shared factory with its own stop channel leaves the informers
// running for the others; only the server's stop ends them.
func TestSharedFactoryOutlivesComponents(t *testing.T) {
	cs := fake.NewSimpleClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}})
	stop := make(chan struct{})
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTransform(dropManagedFields))
	shared := sharedFactory{SharedInformerFactory: f, stop: stop}
	defer func() {
		close(stop)
		f.Shutdown()
	}()

	component := make(chan struct{})
	pods := shared.Core().V1().Pods()
	pods.Informer()
	shared.Start(component)
	for typ, ok := range shared.WaitForCacheSync(component) {
		if !ok {
			t.Fatalf("%v did not sync", typ)
		}
	}
	p, err := pods.Lister().Pods("ns").Get("p")
	if err != nil {
		t.Fatal(err)
	}
	if p.ManagedFields != nil {
		t.Errorf("cached pod keeps managedFields %v", p.ManagedFields)
	}
	close(component) // the component stops
	shared.Shutdown()

	if _, err := cs.CoreV1().Pods("ns").Create(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := pods.Lister().Pods("ns").Get("q"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shared informer stopped with the component")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
