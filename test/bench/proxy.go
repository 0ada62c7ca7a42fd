package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/proxy"
)

// runProxyBench measures the Service proxy (internal/proxy in this process
// against a real server, table skp-bench-<pid>) with nSvc Services of epPerSvc endpoints each: the
// first full sync, then, per EndpointSlice change, the time from the update
// call to the new endpoint's chain being in the kernel (polled with nft), and
// the proxy's CPU (its own and its nft children's) per change. The Service
// and endpoint addresses come from 100.71.0.0/16 and 100.72.0.0/14, which
// nothing on the machine uses, since the rules are live.
func runProxyBench(bin string, nSvc, epPerSvc int) error {
	if os.Geteuid() != 0 {
		fmt.Println("proxy: skipped (needs root for nftables)")
		return nil
	}
	srv, cfg, err := startWithClient(bin, "skiff-bench-proxy", "--disable-controllers", "--service-cidr", "100.71.0.0/16")
	if err != nil {
		return err
	}
	defer srv.stop()
	cs := clientset(cfg, true)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	const ns = "default"

	slice := func(i, gen int) *discoveryv1.EndpointSlice {
		pn, port, proto := "http", int32(8080), corev1.ProtocolTCP
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("svc-%04d-1", i), Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc-%04d", i)}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pn, Port: &port, Protocol: &proto}},
		}
		node := "bench-node"
		for j := 0; j < epPerSvc; j++ {
			ready := true
			ip := fmt.Sprintf("100.%d.%d.%d", 72+i/256%4, i%256, j+1)
			if j == 0 && gen > 0 {
				ip = fmt.Sprintf("100.76.%d.%d", gen/250, gen%250+1) // the change: a new first endpoint
			}
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: &node,
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		return s
	}
	var next atomic.Int64
	var errs atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= nSvc {
					return
				}
				svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%04d", i)},
					Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
				if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					errs.Add(1)
				}
				if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(i, 0), metav1.CreateOptions{}); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if errs.Load() > 0 {
		return fmt.Errorf("proxy bench: %d create errors", errs.Load())
	}
	fmt.Printf("proxy: %d Services with %d endpoints each created in %v\n", nSvc, epPerSvc, time.Since(t0).Round(time.Millisecond))

	table := fmt.Sprintf("skp-bench-%d", os.Getpid())
	defer exec.Command("nft", "delete", "table", "ip", table).Run()
	pcfg := rest.CopyConfig(cfg)
	pcfg.ContentType = "application/vnd.kubernetes.protobuf"
	px, err := proxy.New(proxy.Config{Client: kubernetes.NewForConfigOrDie(pcfg), NodeName: "bench-node",
		ClusterCIDR: "100.72.0.0/14", Table: table, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	pctx, stopProxy := context.WithCancel(ctx)
	done := make(chan error, 1)
	t0 = time.Now()
	go func() { done <- px.Run(pctx) }()
	defer func() { stopProxy(); <-done }()
	select {
	case <-px.Ready():
	case err := <-done:
		return fmt.Errorf("proxy: %w", err)
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("proxy: no first sync within 5 minutes")
	}
	fmt.Printf("proxy: start to first full sync (%d Services, %d endpoints): %v (the transaction itself %v)\n",
		nSvc, nSvc*epPerSvc, time.Since(t0).Round(time.Millisecond), px.Metrics().Snapshot().LastFull.Round(time.Millisecond))
	time.Sleep(2 * time.Second)

	// Per change: from the update call to the end of the proxy's nft
	// transaction that carries it (nft has returned: the rule is in the
	// kernel; checked with nft list after each change, untimed).
	const changes = 30
	var lat, syncs []time.Duration
	var cpu, own float64
	for c := 1; c <= changes; c++ {
		i := (c * 7919) % nSvc
		s := slice(i, c)
		chain := proxy.EndpointChain(ns, fmt.Sprintf("svc-%04d", i), "tcp", "http", s.Endpoints[0].Addresses[0], 8080)
		cur, err := cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.ResourceVersion = cur.ResourceVersion
		before := px.Metrics().Snapshot().Syncs
		cpu0, own0 := processTreeCPU(os.Getpid()), processCPU(os.Getpid())
		start := time.Now()
		if _, err := cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return err
		}
		for {
			snap := px.Metrics().Snapshot()
			if snap.Syncs > before {
				lat = append(lat, snap.LastApplied.Sub(start))
				syncs = append(syncs, snap.Last)
				break
			}
			if time.Since(start) > 30*time.Second {
				return fmt.Errorf("proxy bench: no sync 30 s after the change")
			}
			time.Sleep(time.Millisecond)
		}
		cpu += processTreeCPU(os.Getpid()) - cpu0
		own += processCPU(os.Getpid()) - own0
		if out, err := exec.Command("nft", "list", "chain", "ip", table, chain).CombinedOutput(); err != nil {
			return fmt.Errorf("proxy bench: chain %s not in the kernel after the sync: %s", chain, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("proxy: EndpointSlice change → rule in the kernel: median %v p90 %v (%d changes); proxy sync (render + nft -f) median %v\n",
		pct(lat, 50), pct(lat, 90), changes, pct(syncs, 50))
	fmt.Printf("proxy: CPU per change: %.1f ms (%.1f ms in nft, the rest in this process: proxy and API client)\n",
		cpu/changes*1000, (cpu-own)/changes*1000)
	return nil
}

// processTreeCPU is a process's CPU time in seconds, its own and that of
// its waited-for children (the proxy's nft runs).
func processTreeCPU(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var sum float64
	for _, k := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		v, _ := strconv.ParseFloat(f[k], 64)
		sum += v
	}
	return sum / 100
}
