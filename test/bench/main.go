// Command bench starts a real `skiff server` and prints control-plane
// figures: create throughput and latency, LIST latency at 10,000 pods,
// watch delivery with 1,000 watchers, and server memory; and, as root, pod
// start-up on a real node (pods.go). It is run by
// `make bench`, never by `make test`.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	bin := flag.String("skiff", os.Getenv("SKIFF_BIN"), "skiff binary")
	pods := flag.Int("pods", 10000, "pods for the LIST and memory figures (0 skips the API figures)")
	watchers := flag.Int("watchers", 1000, "concurrent watchers")
	nodes := flag.Int("sched-nodes", 1000, "nodes for the scheduler figures (0 skips them)")
	schedPods := flag.Int("sched-pods", 10000, "pods for the scheduler figures")
	ctrlNodes := flag.Int("controller-nodes", 100, "hollow nodes for the controller figures (0 skips them)")
	replicas := flag.Int("replicas", 3000, "Deployment replicas for the controller figures")
	proxySvcs := flag.Int("proxy-services", 1000, "Services for the proxy figures (0 skips them)")
	proxyEps := flag.Int("proxy-endpoints", 10, "endpoints per Service for the proxy figures")
	profileDir := flag.String("profile-dir", "", "save the server's CPU profile of the 10,000-pod fill and a heap profile after it here, an execution trace of 1 s of the 100-client creates, and a CPU profile of the LISTs")
	dnsSvcs := flag.Int("dns-services", 1000, "Services in the cluster DNS figures (0 skips them)")
	dnsDur := flag.Duration("dns-duration", 5*time.Second, "how long each DNS client count is measured")
	flag.BoolVar(&ownConns, "own-conns", false, "give each concurrent create client its own connection (as separate processes have) instead of multiplexing them all on one HTTP/2 connection (as one client-go process does)")
	startupPods := flag.Int("startup-pods", 100, "pods for the pod start-up figures on a real node (0 skips them; needs root)")
	serverArgs := flag.String("server-args", "", "extra flags for the API figures' skiff server, space-separated (e.g. --max-mutating-requests-inflight=0 to compare)")
	cleanDir := flag.String("clean-node", "", "remove the sandboxes an interrupted pod start-up run left in this agent data dir, then exit")
	flag.Parse()
	if *cleanDir != "" {
		if err := cleanNode(*cleanDir); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *bin == "" {
		*bin = "bin/skiff"
	}
	if *pods > 0 {
		if err := run(*bin, *pods, *watchers, *profileDir, strings.Fields(*serverArgs)); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if *ctrlNodes > 0 {
		if err := runControllers(*bin, *ctrlNodes, int32(*replicas)); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if *proxySvcs > 0 {
		if err := runProxyBench(*bin, *proxySvcs, *proxyEps); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if *dnsSvcs > 0 {
		if err := runDNSBench(*bin, *dnsSvcs, *dnsDur); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if *startupPods > 0 {
		if err := runPodStartup(*bin, *startupPods); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if *nodes > 0 {
		if err := runScheduler(*bin, *nodes, *schedPods); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
}

// fetchProfile saves the server's /debug/pprof/<what> to file.
func fetchProfile(ctx context.Context, cfg *rest.Config, what, file string) error {
	path, query, _ := strings.Cut(what, "?")
	req := clientset(cfg, false).CoreV1().RESTClient().Get().AbsPath("/debug/pprof/" + path)
	if k, v, ok := strings.Cut(query, "="); ok {
		req = req.Param(k, v)
	}
	data, err := req.Timeout(2 * time.Minute).DoRaw(ctx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}

func run(bin string, nPods, nWatchers int, profileDir string, serverArgs []string) error {
	srv, cfg, err := startWithClient(bin, "skiff-bench", serverArgs...)
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Printf("start-up to ready: %v\n", srv.startup.Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	fmt.Printf("RSS idle: %.1f MB\n", srv.rssMB())
	ctx := context.Background()

	for _, clients := range []int{1, 10, 100} {
		n := 3000
		if clients == 1 {
			n = 1000
		}
		collect(ctx, cfg)
		p0 := statusWrites(ctx, cfg)
		g0 := gcStats(ctx, cfg)
		var trace chan error
		if profileDir != "" && clients == 100 {
			// Where the 100 clients' requests wait: goroutine blocking,
			// syscalls, scheduling latency and GC in the execution trace
			// (go tool trace -pprof=sync|syscall|sched|net).
			trace = make(chan error, 1)
			go func() {
				trace <- fetchProfile(ctx, cfg, "trace?seconds=1", filepath.Join(profileDir, "creates.trace"))
			}()
		}
		c0, b0 := srv.cpuSeconds(), processCPU(os.Getpid())
		rate, lat, errs := creates(ctx, cfg, fmt.Sprintf("c%d", clients), clients, n)
		c1, b1 := srv.cpuSeconds(), processCPU(os.Getpid())
		g1 := gcStats(ctx, cfg)
		if trace != nil {
			if err := <-trace; err != nil {
				fmt.Printf("warning: trace: %v\n", err)
			}
		}
		cpu := (c1 - c0) / float64(n) * 1e6
		// The scheduler's status write and event for each unschedulable
		// pod trail the creates: count them too.
		c2, _ := srv.settle(ctx, cfg, p0, n)
		settled := (c2 - c0) / float64(n) * 1e6
		fmt.Printf("creates: %3d clients: %7.0f/s  p50 %v  p99 %v  errors %d  server CPU %.0f µs/create (%.0f with follow-up writes), bench client CPU %.0f µs/create\n",
			clients, rate, pct(lat, 50), pct(lat, 99), errs, cpu, settled, (b1-b0)/float64(n)*1e6)
		fmt.Printf("         %3d clients: p90 %v  max %v; server GC: %.0f cycles, %.1f ms stopped in all; server-side create latency over 50 ms: %.1f%%\n",
			clients, pct(lat, 90), pct(lat, 100), g1.cycles-g0.cycles, (g1.pause-g0.pause)*1e3, 100*(1-(g1.fast-g0.fast)/max(1, g1.creates-g0.creates)))
		if clients == 100 {
			tailShares(clients, g0, g1, lat)
		}
	}

	// Fill to nPods pods in one namespace for LIST and memory.
	filler := clientset(cfg, false)
	if _, err := filler.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "list"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	collect(ctx, cfg)
	var cpuProfile chan error
	if profileDir != "" {
		cpuProfile = make(chan error, 1)
		go func() {
			cpuProfile <- fetchProfile(ctx, cfg, "profile?seconds=10", filepath.Join(profileDir, "cpu.pprof"))
		}()
	}
	p0 := statusWrites(ctx, cfg)
	g0 := gcStats(ctx, cfg)
	c0, a0 := srv.cpuSeconds(), metric(ctx, cfg, "go_memstats_alloc_bytes_total")
	fillLat, fillTook, errs := createPods(ctx, cfg, "list", 100, nPods)
	g1 := gcStats(ctx, cfg)
	if errs > 0 {
		fmt.Printf("warning: %d errors while creating %d pods\n", errs, nPods)
	}
	// The sustained figure: more creates than the 100-client phase above,
	// so that the garbage collector's cycles fall inside it.
	// Allocation per create hardly depends on how busy the machine is,
	// unlike CPU time; it drives the garbage collector's share.
	fmt.Printf("fill %d pods (100 clients): %.0f/s  p50 %v  p99 %v; server CPU %.0f µs/create, allocated %.0f KB/create\n", nPods,
		float64(nPods)/fillTook.Seconds(), pct(fillLat, 50), pct(fillLat, 99),
		(srv.cpuSeconds()-c0)/float64(nPods)*1e6, (metric(ctx, cfg, "go_memstats_alloc_bytes_total")-a0)/float64(nPods)/1024)
	fmt.Printf("fill %d pods (100 clients): p90 %v  max %v; server GC: %.0f cycles, %.1f ms stopped in all\n", nPods,
		pct(fillLat, 90), pct(fillLat, 100), g1.cycles-g0.cycles, (g1.pause-g0.pause)*1e3)
	tailShares(100, g0, g1, fillLat)
	// Until the scheduler has written every pod's status: how much of its
	// work fell inside the fill depends on how fast it kept up. The LISTs
	// below then do not compete with that backlog either.
	c1, writes := srv.settle(ctx, cfg, p0, nPods)
	fmt.Printf("fill %d pods with the scheduler's follow-up writes (%.0f status writes): server CPU %.0f µs/create, allocated %.0f KB/create\n", nPods,
		writes, (c1-c0)/float64(nPods)*1e6, (metric(ctx, cfg, "go_memstats_alloc_bytes_total")-a0)/float64(nPods)/1024)
	if profileDir != "" {
		if err := <-cpuProfile; err != nil {
			fmt.Printf("warning: cpu profile: %v\n", err)
		}
		if err := fetchProfile(ctx, cfg, "heap?gc=1", filepath.Join(profileDir, "heap.pprof")); err != nil {
			fmt.Printf("warning: heap profile: %v\n", err)
		}
	}
	var listProfile chan error
	if profileDir != "" {
		listProfile = make(chan error, 1)
		go func() {
			listProfile <- fetchProfile(ctx, cfg, "profile?seconds=5", filepath.Join(profileDir, "list.pprof"))
		}()
		time.Sleep(100 * time.Millisecond)
	}
	// The server's side alone: the raw response read to its end, not
	// decoded (the first LIST of a format may encode what no watch had).
	for _, proto := range []bool{false, true} {
		accept, name := "application/json", "JSON"
		if proto {
			accept, name = "application/vnd.kubernetes.protobuf", "protobuf"
		}
		rc := clientset(cfg, proto).CoreV1().RESTClient()
		var lat []time.Duration
		size := 0
		c0 := srv.cpuSeconds()
		for i := 0; i < 7; i++ {
			t0 := time.Now()
			data, err := rc.Get().AbsPath("/api/v1/namespaces/list/pods").SetHeader("Accept", accept).DoRaw(ctx)
			if err != nil {
				return fmt.Errorf("raw list: %w", err)
			}
			lat = append(lat, time.Since(t0))
			size = len(data)
		}
		cpu := (srv.cpuSeconds() - c0) / 7 * 1e3
		first := lat[0].Round(time.Millisecond)
		fmt.Printf("LIST %d pods (%s, raw, no client decode): first %v, median %v (7 runs), %.1f MB, server CPU %.0f ms/LIST\n", nPods, name,
			first, pct(lat, 50), float64(size)/1e6, cpu)
	}
	for _, proto := range []bool{false, true} {
		cs := clientset(cfg, proto)
		var lat []time.Duration
		for i := 0; i < 7; i++ {
			t0 := time.Now()
			l, err := cs.CoreV1().Pods("list").List(ctx, metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("list: %w", err)
			}
			lat = append(lat, time.Since(t0))
			if len(l.Items) != nPods {
				return fmt.Errorf("list returned %d pods, want %d", len(l.Items), nPods)
			}
		}
		name := "JSON"
		if proto {
			name = "protobuf"
		}
		fmt.Printf("LIST %d pods (%s): median %v (7 runs)\n", nPods, name, pct(lat, 50))
	}
	if listProfile != nil {
		if err := <-listProfile; err != nil {
			fmt.Printf("warning: list profile: %v\n", err)
		}
	}
	fmt.Printf("RSS with %d pods: %.1f MB (%s; Go heap in use %s)\n", nPods, srv.rssMB(), srv.rssSplit(), heapInUse(ctx, cfg))

	p99, err := watchDelivery(ctx, cfg, nWatchers)
	if err != nil {
		return err
	}
	fmt.Printf("watch delivery, %d watchers: p50 %v p99 %v\n", nWatchers, p99[0], p99[1])
	return nil
}

// runScheduler measures the scheduler on a fresh server.
func runScheduler(bin string, nodes, pods int) error {
	// The scheduler alone: the bench's nodes have no kubelet, so the node
	// lifecycle controller would taint them unreachable after 40 s.
	srv, cfg, err := startWithClient(bin, "skiff-bench-sched", "--disable-controllers",
		// No serviceaccount controller makes the namespaces' default
		// ServiceAccount, so its admission would refuse every pod.
		"--disable-admission-plugins", "ServiceAccount")
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := schedulerBench(context.Background(), cfg, nodes, pods); err != nil {
		return err
	}
	return idleWithUnschedulable(context.Background(), cfg, srv, 1000)
}

// idleWithUnschedulable creates pods that fit nowhere and reports the
// server's CPU use while they wait: it must not busy-loop.
func idleWithUnschedulable(ctx context.Context, cfg *rest.Config, srv *server, n int) error {
	cs := clientset(cfg, true)
	ns := "unschedulable"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	p0 := statusWrites(ctx, cfg)
	for i := 0; i < n; i++ {
		p := benchPod(fmt.Sprintf("huge-%04d", i))
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000")}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	// Let the first attempts and the (paced) status writes settle.
	time.Sleep(5 * time.Second)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && statusWrites(ctx, cfg) < p0+float64(n); {
		time.Sleep(200 * time.Millisecond)
	}
	c0 := srv.cpuSeconds()
	time.Sleep(10 * time.Second)
	c1 := srv.cpuSeconds()
	fmt.Printf("server CPU with %d unschedulable pods waiting: %.1f%% of one core (10 s)\n", n, (c1-c0)/10*100)
	return nil
}

// startWithClient starts a server in a fresh data dir (removed on stop)
// and returns an unthrottled client config for it.
func startWithClient(bin, prefix string, extra ...string) (*server, *rest.Config, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, err
	}
	srv, err := start(bin, dir, extra...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	srv.dir = dir
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		srv.stop()
		return nil, nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0
	return srv, cfg, nil
}

func clientset(cfg *rest.Config, proto bool) kubernetes.Interface {
	c := rest.CopyConfig(cfg)
	if proto {
		c.ContentType = "application/vnd.kubernetes.protobuf"
		c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	return kubernetes.NewForConfigOrDie(c)
}

func creates(ctx context.Context, cfg *rest.Config, ns string, clients, n int) (float64, []time.Duration, int) {
	cs := clientset(cfg, true)
	cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	t0 := time.Now()
	lat, _, errs := createPods(ctx, cfg, ns, clients, n)
	return float64(n) / time.Since(t0).Seconds(), lat, errs
}

// ownConns: every create client dials a connection of its own.
var ownConns bool

// clientConfig is a create client's config: with ownConns a proxy
// function that never proxies, which keeps client-go from sharing one
// cached transport (and so one HTTP/2 connection) among equal configs.
func clientConfig(cfg *rest.Config) *rest.Config {
	if !ownConns {
		return cfg
	}
	c := rest.CopyConfig(cfg)
	c.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	return c
}

func createPods(ctx context.Context, cfg *rest.Config, ns string, clients, n int) ([]time.Duration, time.Duration, int) {
	var (
		next  atomic.Int64
		errs  atomic.Int64
		mu    sync.Mutex
		lat   []time.Duration
		wg    sync.WaitGroup
		start = time.Now()
	)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs := clientset(clientConfig(cfg), true)
			var mine []time.Duration
			for {
				i := next.Add(1)
				if i > int64(n) {
					break
				}
				t0 := time.Now()
				_, err := cs.CoreV1().Pods(ns).Create(ctx, benchPod(fmt.Sprintf("p-%d", i)), metav1.CreateOptions{})
				if err != nil {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, time.Since(start), int(errs.Load())
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "registry.local/pause:3.10",
			Resources: corev1.ResourceRequirements{},
		}}},
	}
}

// watchDelivery opens n watches on one namespace, writes objects, and
// measures from the write's acknowledgement-independent start time (the
// moment before the create call) to each watcher's receipt.
func watchDelivery(ctx context.Context, cfg *rest.Config, n int) ([2]time.Duration, error) {
	cs := clientset(cfg, true)
	ns := "watch"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return [2]time.Duration{}, err
	}
	c := rest.CopyConfig(cfg)
	c.ContentType = "application/vnd.kubernetes.protobuf"
	wcs := kubernetes.NewForConfigOrDie(c) // one HTTP/2 connection carries the streams
	var (
		mu   sync.Mutex
		sent = map[string]time.Time{}
		lat  []time.Duration
	)
	var ws []watch.Interface
	for i := 0; i < n; i++ {
		w, err := wcs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			return [2]time.Duration{}, fmt.Errorf("watch %d: %w", i, err)
		}
		ws = append(ws, w)
	}
	const events = 20
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func(w watch.Interface) {
			defer wg.Done()
			got := 0
			timeout := time.After(60 * time.Second)
			for got < events {
				select {
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					if ev.Type != watch.Added {
						continue
					}
					now := time.Now()
					name := ev.Object.(*corev1.ConfigMap).Name
					// Only the bench's own ConfigMaps count (the
					// namespace's kube-root-ca.crt is not one).
					mu.Lock()
					t0, ours := sent[name]
					if ours {
						lat = append(lat, now.Sub(t0))
					}
					mu.Unlock()
					if ours {
						got++
					}
				case <-timeout:
					return
				}
			}
		}(w)
	}
	time.Sleep(time.Second)
	for i := 0; i < events; i++ {
		name := "cm-" + strconv.Itoa(i)
		mu.Lock()
		sent[name] = time.Now()
		mu.Unlock()
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			return [2]time.Duration{}, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	for _, w := range ws {
		w.Stop()
	}
	if len(lat) < n*events {
		fmt.Printf("warning: %d of %d watch events arrived\n", len(lat), n*events)
	}
	return [2]time.Duration{pct(lat, 50), pct(lat, 99)}, nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s) - 1) * p / 100
	return s[i].Round(10 * time.Microsecond)
}

type server struct {
	cmd     *exec.Cmd
	dir     string
	startup time.Duration
}

func start(bin, dir string, extra ...string) (*server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "server", "--data-dir", dir, "--https-listen-port", strconv.Itoa(port),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--disable-agent")
	cmd.Args = append(cmd.Args, extra...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "skiff server is ready") {
			go func() {
				for sc.Scan() {
				}
			}()
			return &server{cmd: cmd, startup: time.Since(t0)}, nil
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, fmt.Errorf("skiff server exited before ready")
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// cpuSeconds is the server process's user+system CPU time.
func (s *server) cpuSeconds() float64 { return processCPU(s.cmd.Process.Pid) }

// settle waits (at most 30 s) until the scheduler has written the
// status of n more pods than before (p0 status writes) or its writes have
// slowed to a trickle (under 150 in a second: the scheduler paces the
// records of pods that fit nowhere, 50 a second after a burst of 100), and
// returns the server's CPU time then and the status writes since p0.
func (s *server) settle(ctx context.Context, cfg *rest.Config, p0 float64, n int) (float64, float64) {
	last, lastAt := p0, time.Now()
	w := p0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if w = statusWrites(ctx, cfg); w >= p0+float64(n) {
			break
		}
		if since := time.Since(lastAt); since >= time.Second {
			if (w-last)/since.Seconds() < 150 {
				break
			}
			last, lastAt = w, time.Now()
		}
	}
	return s.cpuSeconds(), w - p0
}

// collect runs a collection in the server (a heap profile with gc=1) and
// discards the profile: each create phase starts just after a collection,
// as go test's benchmarks do, so that whether its few thousand creates
// meet a cycle does not depend on where the previous phase left the
// heap's growth. The busy server's 1 GiB of headroom then holds the
// 10,000-pod fill without a cycle; a longer fill (-pods 30000) meets some.
func collect(ctx context.Context, cfg *rest.Config) {
	_, _ = clientset(cfg, false).CoreV1().RESTClient().Get().AbsPath("/debug/pprof/heap").Param("gc", "1").
		Timeout(time.Minute).DoRaw(ctx)
}

// statusWrites is how many PATCH requests to pods/status the server
// answered.
func statusWrites(ctx context.Context, cfg *rest.Config) float64 {
	data, err := clientset(cfg, false).CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, line := range strings.Split(string(data), "\n") {
		rest, counter := strings.CutPrefix(line, "apiserver_request_total{")
		labels, v, ok := strings.Cut(rest, "} ")
		if !ok || !counter || !strings.Contains(labels, `resource="pods"`) ||
			!strings.Contains(labels, `subresource="status"`) || !strings.Contains(strings.ToLower(labels), `verb="patch"`) {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		sum += f
	}
	return sum
}

// serverFigures are cumulative counters from the server's /metrics.
type serverFigures struct {
	cycles, pause float64 // GC cycles; seconds the world was stopped
	creates, fast float64 // pod creates answered; of them within 50 ms
	// within counts the pod creates answered within each of
	// tailBounds, as the server's request histogram has them.
	within map[string]float64
}

// tailBounds are the server histogram's buckets the bench compares with
// what its clients observed.
var tailBounds = []string{"0.025", "0.05", "0.1", "0.25"}

// tailShares prints, for the creates between g0 and g1, the share slower
// than each of tailBounds on the server's side (its request histogram:
// from the handler's start to its end) and as the clients observed them
// (lat: also the client's own queueing, both ends' HTTP/2 and TLS, and the
// wait for a server goroutine to read the request).
func tailShares(clients int, g0, g1 serverFigures, lat []time.Duration) {
	n := max(1, g1.creates-g0.creates)
	var b strings.Builder
	for _, le := range tailBounds {
		bound, _ := strconv.ParseFloat(le, 64)
		slow := 0
		for _, d := range lat {
			if d.Seconds() > bound {
				slow++
			}
		}
		fmt.Fprintf(&b, "  >%v ms: server %.1f%%, client %.1f%%", bound*1000, 100*(1-(g1.within[le]-g0.within[le])/n),
			100*float64(slow)/float64(max(1, len(lat))))
	}
	fmt.Printf("         %3d clients: creates slower than%s\n", clients, b.String())
}

func gcStats(ctx context.Context, cfg *rest.Config) serverFigures {
	data, err := clientset(cfg, false).CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return serverFigures{}
	}
	var g serverFigures
	for _, line := range strings.Split(string(data), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		switch {
		case name == "go_gc_duration_seconds_count":
			g.cycles = f
		case name == "go_gc_duration_seconds_sum":
			g.pause = f
		case strings.HasPrefix(name, "apiserver_request_duration_seconds_") && strings.Contains(name, `resource="pods"`) &&
			strings.Contains(name, `subresource=""`) && strings.Contains(name, `verb="create"`):
			if strings.HasPrefix(name, "apiserver_request_duration_seconds_count") {
				g.creates = f
			} else if strings.Contains(name, `le="0.05"`) {
				g.fast = f
			}
			for _, le := range tailBounds {
				if strings.Contains(name, `le="`+le+`"`) {
					if g.within == nil {
						g.within = map[string]float64{}
					}
					g.within[le] = f
				}
			}
		}
	}
	return g
}

// processCPU is a process's user+system CPU time in seconds.
func processCPU(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	// Fields after the command: state is [0]; utime and stime are [11], [12].
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks (USER_HZ = 100)
}

// rssSplit is the anonymous and file-backed (etcd's mmapped database)
// parts of the server's RSS.
func (s *server) rssSplit() string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return "?"
	}
	var parts []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "RssAnon:") || strings.HasPrefix(line, "RssFile:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			parts = append(parts, fmt.Sprintf("%s %.0f MB", strings.TrimSuffix(strings.TrimPrefix(f[0], "Rss"), ":"), kb/1024))
		}
	}
	return strings.Join(parts, ", ")
}

// heapInUse reads go_memstats_heap_inuse_bytes from the server's /metrics.
func heapInUse(ctx context.Context, cfg *rest.Config) string {
	b := metric(ctx, cfg, "go_memstats_heap_inuse_bytes")
	if b < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f MB", b/1e6)
}

// metric reads one unlabelled sample from the server's /metrics (-1 if
// absent).
func metric(ctx context.Context, cfg *rest.Config, name string) float64 {
	data, err := clientset(cfg, false).CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// rssMB reads VmRSS of the server process.
func (s *server) rssMB() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}
