package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// schedulerBench creates nNodes Node objects, then measures two runs of
// nPods pods each on them, per pod from its create call to the moment a
// watch sees it bound: plain pods, and (after the plain pods are deleted)
// a mix where 30% carry pod anti-affinity or a topology spread constraint.
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
				name := fmt.Sprintf("node-%04d", i)
				n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"zone": fmt.Sprintf("z%d", i%3), corev1.LabelHostname: name}},
					Status: corev1.NodeStatus{Capacity: alloc, Allocatable: alloc}}
				cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
			}
		}()
	}
	wg.Wait()
	if err := schedulingRun(ctx, cfg, "sched-bench", "plain", nNodes, nPods, nil); err != nil {
		return err
	}
	if err := deleteAll(ctx, cs, "sched-bench"); err != nil {
		return err
	}
	if err := schedulingRun(ctx, cfg, "sched-bench-constraints", "30% with constraints", nNodes, nPods, constrain); err != nil {
		return err
	}
	return checkConstraints(ctx, cs, "sched-bench-constraints")
}

// Groups of constrained pods: pods i%10 == 0 have required anti-affinity on
// hostname within their group, i%10 == 1 preferred anti-affinity, i%10 == 2
// a DoNotSchedule zone spread (maxSkew 1); the rest are plain.
const benchGroups = 100

func constrain(i int, p *corev1.Pod) {
	kind := i % 10
	if kind > 2 {
		return
	}
	grp := fmt.Sprintf("k%d-g%d", kind, (i/10)%benchGroups)
	p.Labels["grp"] = grp
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"grp": grp}}
	term := corev1.PodAffinityTerm{TopologyKey: corev1.LabelHostname, LabelSelector: sel}
	switch kind {
	case 0:
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term}}}
	case 1:
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: term}}}}
	case 2:
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: sel}}
	}
}

// schedulingRun creates nPods pods in namespace ns (mutate, if set, shapes
// pod i) and prints throughput and latency.
func schedulingRun(ctx context.Context, cfg *rest.Config, ns, what string, nNodes, nPods int, mutate func(int, *corev1.Pod)) error {
	cs := clientset(cfg, true)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		created = map[string]time.Time{}
		boundAt = map[string]time.Time{}
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		w.Stop()
	}()
	done := make(chan struct{})
	rewatches := 0
	go func() {
		defer close(done)
		lastRV := ""
		for {
			for ev := range w.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				lastRV = p.ResourceVersion
				if (ev.Type != watch.Added && ev.Type != watch.Modified) || p.Spec.NodeName == "" {
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
			// The server ends a watch that falls behind (as upstream's
			// watch cache does); go on from the last event seen, as an
			// informer's reflector would.
			if ctx.Err() != nil {
				return
			}
			nw, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: lastRV})
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: re-watch:", err)
				return
			}
			mu.Lock()
			w = nw
			rewatches++
			mu.Unlock()
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	var next, failed atomic.Int64
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
				if mutate != nil {
					mutate(int(i), p)
				}
				t0 := time.Now()
				if _, err := pcs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "bench: create:", err)
					}
					continue
				}
				mu.Lock()
				created[name] = t0
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d pod creates failed", n, nPods)
	}
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
	fmt.Printf("scheduling %d pods on %d nodes (%s): %d bound, %.0f pods/s (first create to last bind), latency p50 %v p99 %v; the watch was re-opened %d times\n",
		nPods, nNodes, what, len(boundAt), float64(len(boundAt))/last.Sub(start).Seconds(), pct(lat, 50), pct(lat, 99), rewatches)
	return nil
}

// deleteAll removes every pod in ns at once and waits until they are gone.
func deleteAll(ctx context.Context, cs kubernetes.Interface, ns string) error {
	zero := int64(0)
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("delete pods in %s: %w", ns, err)
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil && len(l.Items) == 0 {
			return nil
		}
	}
	return fmt.Errorf("pods in %s not gone after 2 minutes", ns)
}

// checkConstraints counts placements that break the hard constraints:
// two pods of a required anti-affinity group on one node, or a spread
// group more than 1 apart between zones.
func checkConstraints(ctx context.Context, cs kubernetes.Interface, ns string) error {
	l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	zoneOf := map[string]string{}
	for _, n := range nodes.Items {
		zoneOf[n.Name] = n.Labels["zone"]
	}
	onNode := map[string]int{}             // group/node -> pods
	perZone := map[string]map[string]int{} // spread group -> zone -> pods
	violations := 0
	for _, p := range l.Items {
		grp := p.Labels["grp"]
		switch {
		case p.Spec.NodeName == "" || grp == "":
		case p.Spec.Affinity != nil && p.Spec.Affinity.PodAntiAffinity != nil && len(p.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0:
			if onNode[grp+"/"+p.Spec.NodeName]++; onNode[grp+"/"+p.Spec.NodeName] > 1 {
				violations++
			}
		case len(p.Spec.TopologySpreadConstraints) > 0:
			if perZone[grp] == nil {
				perZone[grp] = map[string]int{}
			}
			perZone[grp][zoneOf[p.Spec.NodeName]]++
		}
	}
	for _, zones := range perZone {
		lo, hi := -1, 0
		for _, z := range []string{"z0", "z1", "z2"} {
			if lo < 0 || zones[z] < lo {
				lo = zones[z]
			}
			hi = max(hi, zones[z])
		}
		if hi-lo > 1 {
			violations++
		}
	}
	fmt.Printf("constraint violations after the constrained run: %d\n", violations)
	return nil
}
