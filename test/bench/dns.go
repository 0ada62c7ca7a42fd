package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/dns"
)

// runDNSBench measures the cluster DNS server (internal/dns in this
// process, fed by a real server's Services through informers, on a free
// loopback port): queries per second and p50/p99 latency over UDP with 1, 16
// and 64 concurrent clients, each on its own socket with one query in
// flight, for a mix of Service A, SRV, NXDOMAIN and pod names over nSvc
// Services. Forwarding is not measured (no upstream is reachable here).
func runDNSBench(bin string, nSvc int, d time.Duration) error {
	srv, cfg, err := startWithClient(bin, "skiff-bench-dns", "--disable-controllers")
	if err != nil {
		return err
	}
	defer srv.stop()
	cs := clientset(cfg, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
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
					Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
				if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					fmt.Println("dns: create service:", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s, err := dns.New(dns.Config{Client: cs, ListenAddr: "127.0.0.1:0", Upstreams: []string{"127.0.0.1:1"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	go s.Run(ctx)
	select {
	case <-s.Ready():
	case <-ctx.Done():
		return ctx.Err()
	}
	names := []struct {
		name  string
		qtype uint16
	}{
		{fmt.Sprintf("svc-%04d.default.svc.cluster.local.", nSvc/3), mdns.TypeA},
		{fmt.Sprintf("svc-%04d.default.svc.cluster.local.", nSvc-1), mdns.TypeA},
		{"_http._tcp.svc-0005.default.svc.cluster.local.", mdns.TypeSRV},
		{"kubernetes.default.svc.cluster.local.", mdns.TypeA},
		{"nope.default.svc.cluster.local.", mdns.TypeA},
		{"10-42-3-4.default.pod.cluster.local.", mdns.TypeA},
	}
	// The last Service must be in the table before measuring.
	c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		r, _, err := c.Exchange(new(mdns.Msg).SetQuestion(names[1].name, mdns.TypeA), s.Addr())
		if err == nil && r.Rcode == mdns.RcodeSuccess && len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dns: %s not answered within a minute: %v", names[1].name, err)
		}
	}
	for _, clients := range []int{1, 16, 64} {
		lat := make([][]time.Duration, clients)
		var failed atomic.Int64
		stop := time.Now().Add(d)
		var wg sync.WaitGroup
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := (&mdns.Client{Net: "udp"}).Dial(s.Addr())
				if err != nil {
					failed.Add(1)
					return
				}
				defer conn.Close()
				for i := 0; time.Now().Before(stop); i++ {
					q := names[(c+i)%len(names)]
					t0 := time.Now()
					_ = conn.SetDeadline(t0.Add(2 * time.Second))
					if err := conn.WriteMsg(new(mdns.Msg).SetQuestion(q.name, q.qtype)); err != nil {
						failed.Add(1)
						return
					}
					if _, err := conn.ReadMsg(); err != nil {
						failed.Add(1)
						continue
					}
					lat[c] = append(lat[c], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		fmt.Printf("dns: %d clients over UDP, %d Services: %.0f queries/s, p50 %v, p99 %v, %d failed\n",
			clients, nSvc+1, float64(len(all))/elapsed.Seconds(), pct(all, 50).Round(time.Microsecond),
			pct(all, 99).Round(time.Microsecond), failed.Load())
	}
	return nil
}
