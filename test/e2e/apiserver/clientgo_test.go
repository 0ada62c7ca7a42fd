package apiserver_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-")
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

func TestInformersSyncAndSeeChanges(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	for i := 0; i < 5; i++ {
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pre-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// client-go v0.37 informers start with a watch-list request
	// (sendInitialEvents=true); a server ignoring it makes them hang here.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	cmInformer := factory.Core().V1().ConfigMaps().Informer()
	var mu sync.Mutex
	events := map[string][]string{}
	cmInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			mu.Lock()
			events["add"] = append(events["add"], obj.(*corev1.ConfigMap).Name)
			mu.Unlock()
		},
		UpdateFunc: func(_, obj interface{}) {
			mu.Lock()
			events["update"] = append(events["update"], obj.(*corev1.ConfigMap).Name)
			mu.Unlock()
		},
		DeleteFunc: func(obj interface{}) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			mu.Lock()
			events["delete"] = append(events["delete"], obj.(*corev1.ConfigMap).Name)
			mu.Unlock()
		},
	})
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	syncCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), cmInformer.HasSynced) {
		t.Fatal("informer did not sync within 10s")
	}
	if n := len(cmInformer.GetStore().List()); n != 5 {
		t.Fatalf("synced store holds %d configmaps, want 5", n)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"k": "v"}
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "later", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := contains(events["add"], "later") && contains(events["update"], "later") && contains(events["delete"], "later")
		snapshot := fmt.Sprint(events)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("informer events after 10s: %s", snapshot)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestListPagingAndSelectors(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	for i := 0; i < 25; i++ {
		lbl := map[string]string{"parity": []string{"even", "odd"}[i%2]}
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i), Labels: lbl}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	opts := metav1.ListOptions{Limit: 10}
	pages := 0
	for {
		list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if pages == 0 && (list.RemainingItemCount == nil || *list.RemainingItemCount != 15) {
			t.Errorf("first page remainingItemCount = %v, want 15", list.RemainingItemCount)
		}
		pages++
		for _, cm := range list.Items {
			seen[cm.Name] = true
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if pages != 3 || len(seen) != 25 {
		t.Fatalf("%d pages, %d objects; want 3 pages, 25 objects", pages, len(seen))
	}
	odd, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "parity=odd"})
	if err != nil || len(odd.Items) != 12 {
		t.Fatalf("label selector: %d items, %v", len(odd.Items), err)
	}
	one, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=cm-07"})
	if err != nil || len(one.Items) != 1 {
		t.Fatalf("field selector: %v %v", one, err)
	}
	_, err = cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=x"})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "field label not supported") {
		t.Fatalf("unsupported field selector: %v", err)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n1,status.phase=Pending"})
	if err != nil || len(pods.Items) != 0 {
		t.Fatalf("pod field selectors: %v %v", pods, err)
	}
}

func TestWatchSelectionAndBookmarks(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "w"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "pick=yes", ResourceVersion: cm.ResourceVersion, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cm.Labels = map[string]string{"pick": "yes"}
	if cm, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectWatch(t, w, watch.Added, "w")
	cm.Labels = map[string]string{"pick": "no"}
	if _, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectWatch(t, w, watch.Deleted, "w")
}

func expectWatch(t *testing.T, w watch.Interface, typ watch.EventType, name string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed before %s %s", typ, name)
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			m, _ := ev.Object.(metav1.Object)
			if ev.Type != typ || m == nil || m.GetName() != name {
				t.Fatalf("got %s %v, want %s %s", ev.Type, ev.Object, typ, name)
			}
			return
		case <-timeout:
			t.Fatalf("no %s event for %s within 10s", typ, name)
		}
	}
}
