package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// schedulerBench creates nNodes Node objects and nPods pods through the API
// and measures, per pod, the time from its create call to the moment a
// watch sees it bound.
func schedulerBench(ctx context.Context, cfg *rest.Config, nNodes, nPods int) error {
	cs := clientset(cfg, true)
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods: resource.MustParse("110")}
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < 50; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(nNodes) {
					return
				}
				n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%04d", i), Labels: map[string]string{"zone": fmt.Sprintf("z%d", i%3)}},
					Status: corev1.NodeStatus{Capacity: alloc, Allocatable: alloc}}
				cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
			}
		}()
	}
	wg.Wait()
	ns := "sched-bench"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	defer w.Stop()
	var (
		mu      sync.Mutex
		created = map[string]time.Time{}
		boundAt = map[string]time.Time{}
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || p.Spec.NodeName == "" {
				continue
			}
			mu.Lock()
			if _, seen := boundAt[p.Name]; !seen {
				boundAt[p.Name] = time.Now()
			}
			n := len(boundAt)
			mu.Unlock()
			if n >= nPods {
				return
			}
		}
	}()
	start := time.Now()
	next.Store(0)
	for c := 0; c < 100; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pcs := clientset(cfg, true)
			for {
				i := next.Add(1)
				if i > int64(nPods) {
					return
				}
				name := fmt.Sprintf("p-%05d", i)
				p := benchPod(name)
				p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
				t0 := time.Now()
				if _, err := pcs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err == nil {
					mu.Lock()
					created[name] = t0
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		fmt.Println("warning: not every pod was bound within 5 minutes")
	}
	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	var last time.Time
	for name, b := range boundAt {
		if c, ok := created[name]; ok {
			lat = append(lat, b.Sub(c))
		}
		if b.After(last) {
			last = b
		}
	}
	fmt.Printf("scheduling %d pods on %d nodes: %d bound, %.0f pods/s (first create to last bind), latency p50 %v p99 %v\n",
		nPods, nNodes, len(boundAt), float64(len(boundAt))/last.Sub(start).Seconds(), pct(lat, 50), pct(lat, 99))
	return nil
}
