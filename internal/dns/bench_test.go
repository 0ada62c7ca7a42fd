package dns

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/runtime"
)

// BenchmarkQueries measures queries per second and p99 latency over loopback
// UDP with N concurrent clients, each on its own socket sending one query and
// waiting for the answer, against a table of 1,000 Services:
//
//	go test -run '^$' -bench Queries -benchtime 200000x ./internal/dns/
func BenchmarkQueries(b *testing.B) {
	objs := make([]runtime.Object, 0, 1000)
	for i := range 1000 {
		objs = append(objs, service("default", fmt.Sprintf("svc-%d", i), fmt.Sprintf("10.43.%d.%d", i/250, i%250+1), port("http", 80)))
	}
	objs = append(objs, fixture()...)
	s, _ := startServer(b, objs...)
	names := []struct {
		name  string
		qtype uint16
	}{
		{"svc-17.default.svc.cluster.local.", dns.TypeA},
		{"svc-999.default.svc.cluster.local.", dns.TypeA},
		{"_http._tcp.svc-5.default.svc.cluster.local.", dns.TypeSRV},
		{"db.default.svc.cluster.local.", dns.TypeA},
		{"nope.default.svc.cluster.local.", dns.TypeA},
		{"10-2-3-4.default.pod.cluster.local.", dns.TypeA},
	}
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			lat := make([][]time.Duration, clients)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range clients {
				n := b.N / clients
				if c < b.N%clients {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := (&dns.Client{Net: "udp"}).Dial(s.Addr())
					if err != nil {
						b.Error(err)
						return
					}
					defer conn.Close()
					ls := make([]time.Duration, 0, n)
					for i := range n {
						q := names[(c+i)%len(names)]
						m := new(dns.Msg).SetQuestion(q.name, q.qtype)
						t0 := time.Now()
						_ = conn.SetDeadline(t0.Add(2 * time.Second))
						if err := conn.WriteMsg(m); err != nil {
							b.Error(err)
							return
						}
						if _, err := conn.ReadMsg(); err != nil {
							b.Error(err)
							return
						}
						ls = append(ls, time.Since(t0))
					}
					lat[c] = ls
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			if len(all) == 0 {
				return
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "qps")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		})
	}
}
