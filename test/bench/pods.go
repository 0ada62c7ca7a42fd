package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/agent/images"
)

var startupBursts = flag.Int("startup-bursts", 3, "bursts of pods created at once, one after another on the emptied node; each is printed, and their median")

var startupPerf = flag.String("startup-perf", "", "record the whole machine with `perf record -a -g` during the pod start-up burst into this file")

// startPerf starts a system-wide perf recording into file ("" does
// nothing) and returns what stops it.
func startPerf(file string) func() {
	if file == "" {
		return func() {}
	}
	cmd := exec.Command("perf", "record", "-a", "-g", "-e", "cpu-clock", "-F", "499", "-o", file)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Println("warning: perf:", err)
		return func() {}
	}
	time.Sleep(time.Second) // perf is recording once it has opened its events
	return func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
}

// runPodStartup measures pod start-up on a real node: a `skiff server`
// and a `skiff agent` subprocess with its own containerd. Pods run the
// pause image, which the agent imports at start, so no image is pulled.
// Latency is from just before the create call to the watch event showing
// the pod Running and Ready.
func runPodStartup(bin string, n int) error {
	if os.Geteuid() != 0 {
		fmt.Println("pod start-up: skipped (needs root for containerd and CNI)")
		return nil
	}
	pid := os.Getpid()
	cidr := fmt.Sprintf("10.%d.0.0/16", 200+(pid*7+5)%50)
	srv, cfg, err := startWithClient(bin, "skiff-bench-pods", "--cluster-cidr", cidr)
	if err != nil {
		return err
	}
	defer srv.stop()
	t0 := time.Now()
	ag, err := startAgent(bin, filepath.Join(srv.dir, "node"), filepath.Join(srv.dir, "admin.kubeconfig"),
		fmt.Sprintf("sps%d", pid%100000))
	if err != nil {
		return err
	}
	defer ag.stop()
	ctx := context.Background()
	cs := clientset(cfg, true)
	if err := waitNodeReady(ctx, cs, ag.node, 2*time.Minute); err != nil {
		return err
	}
	fmt.Printf("node agent start-up (fresh data dir, own containerd) to node Ready: %v\n", time.Since(t0).Round(time.Millisecond))
	ns := "startup"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer deleteAllPods(ctx, cs, ns)

	// Warm-up: the first sandbox pays one-off costs (CNI set-up).
	if _, err := startPods(ctx, cfg, ns, "warm", 1, 0); err != nil {
		return err
	}
	if err := deleteAllPods(ctx, cs, ns); err != nil {
		return err
	}
	if err := waitNoSandboxes(ctx, ag.dir, 2*time.Minute); err != nil {
		return err
	}

	lat, err := startPods(ctx, cfg, ns, "paced", n, 200*time.Millisecond)
	if err != nil {
		return err
	}
	fmt.Printf("pod start-up, %d pods at 5/s: p50 %v  p99 %v  (create → Running+Ready via watch)\n", n, pct(lat, 50), pct(lat, 99))
	if err := deleteAllPods(ctx, cs, ns); err != nil {
		return err
	}
	// The burst starts on an empty node.
	if err := waitNoSandboxes(ctx, ag.dir, 2*time.Minute); err != nil {
		return err
	}

	var alls []time.Duration
	for b := 0; b < max(1, *startupBursts); b++ {
		if b > 0 {
			if err := deleteAllPods(ctx, cs, ns); err != nil {
				return err
			}
			if err := waitNoSandboxes(ctx, ag.dir, 2*time.Minute); err != nil {
				return err
			}
		}
		all, err := burst(ctx, cfg, cs, srv, ag, ns, n, b == 0)
		if err != nil {
			return err
		}
		alls = append(alls, all)
	}
	if len(alls) > 1 {
		sorted := slices.Clone(alls)
		slices.Sort(sorted)
		var each []string
		for _, a := range alls {
			each = append(each, a.Round(time.Millisecond).String())
		}
		fmt.Printf("pod start-up, %d pods at once, %d bursts: all Running+Ready after %s; median %v\n",
			n, len(alls), strings.Join(each, ", "), sorted[len(sorted)/2].Round(time.Millisecond))
	}
	return nil
}

// burst starts n pods at once on the empty node, prints how long until all
// are Running and Ready and the CPU the node spent per pod, and returns the
// time; perf records the first burst when -startup-perf is set.
func burst(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, srv *server, ag *benchAgent, ns string, n int, first bool) (time.Duration, error) {
	stopPerf := func() {}
	if first {
		stopPerf = startPerf(*startupPerf)
		if *startupPerf != "" {
			fmt.Printf("perf: server pid %d, agent pid %d, containerd pid %d\n", srv.cmd.Process.Pid, ag.cmd.Process.Pid, ag.containerdPID())
		}
	}
	cpu0, srv0, node0 := ag.cpuSeconds(), processCPUSplit(srv.cmd.Process.Pid), ag.cgroupCPU()
	mach0 := readMachineCPU()
	t0 := time.Now()
	lat, err := startPods(ctx, cfg, ns, "burst", n, 0)
	if err != nil {
		stopPerf()
		return 0, err
	}
	all := time.Since(t0)
	mach := readMachineCPU().sub(mach0)
	stopPerf()
	cpu, srvCPU, nodeCPU := ag.cpuSeconds().sub(cpu0), processCPUSplit(srv.cmd.Process.Pid).sub(srv0), ag.cgroupCPU()-node0
	podsCPU, err := podCgroupsCPU(ctx, cs, ns)
	if err != nil {
		return 0, err
	}
	fmt.Printf("pod start-up, %d pods at once: all Running+Ready after %v (%.1f pods/s), p50 %v p99 %v\n",
		n, all.Round(time.Millisecond), float64(n)/all.Seconds(), pct(lat, 50), pct(lat, 99))
	fmt.Printf("CPU per pod start (agent + containerd + shims): %.3f s (agent %.3f, containerd %.3f, shims %.3f)\n",
		cpu.total()/float64(n), cpu.agent/float64(n), cpu.containerd/float64(n), cpu.shims/float64(n))
	if nodeCPU > 0 {
		// The agent's cgroup holds everything it starts but the containers
		// (runc init joins the pod's cgroup before it execs the process).
		fmt.Printf("CPU per pod start, whole node: %.3f s (agent's cgroup: agent, containerd, shims, runc, CNI %.3f; pods' cgroups: runc init and the containers %.3f)\n",
			(nodeCPU+podsCPU)/float64(n), nodeCPU/float64(n), podsCPU/float64(n))
	}
	perPod := func(c procCPU) string {
		return fmt.Sprintf("%.3f own + %.3f children", c.self/float64(n), c.children/float64(n))
	}
	fmt.Printf("  split: containerd %s (CNI plugins, shim start); shims %s (runc); server %s\n",
		perPod(cpu.containerdSplit), perPod(cpu.shimsSplit), perPod(srvCPU))
	if mach.total > 0 {
		// A burst is CPU-bound: its time is the CPU the pod starts take
		// over the cores the machine gives them. This tells a slower
		// machine (more CPU per pod, as above) from idle cores.
		cores := float64(mach.cpus) * (mach.total - mach.idle) / mach.total
		fmt.Printf("  machine: %.2f of %d cores busy during the burst (%.1f%% idle)\n", cores, mach.cpus, 100*mach.idle/mach.total)
	}
	fmt.Printf("RSS with %d pods: agent %.1f MB, containerd %.1f MB, shims %.1f MB total\n", n,
		rssMB(ag.cmd.Process.Pid), rssMB(ag.containerdPID()), ag.shimRSSMB())
	return all, nil
}

// startPods creates n pods named prefix-i, one every interval (0: all at
// once from 20 clients), and returns each pod's create → Running+Ready
// latency as seen by a watch. It prints how that splits into create →
// bound to the node (control plane) and bound → Running+Ready (node).
func startPods(ctx context.Context, cfg *rest.Config, ns, prefix string, n int, interval time.Duration) ([]time.Duration, error) {
	cs := clientset(cfg, true)
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var (
		mu      sync.Mutex
		created = map[string]time.Time{}
		lat     []time.Duration
		bound   = map[string]time.Time{}
		toBind  []time.Duration
		toRun   []time.Duration
		updates int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := map[string]bool{}
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || seen[p.Name] {
				continue
			}
			if ev.Type == watch.Modified {
				mu.Lock()
				updates++
				mu.Unlock()
			}
			now := time.Now()
			mu.Lock()
			if _, ok := bound[p.Name]; !ok && p.Spec.NodeName != "" {
				bound[p.Name] = now
				if t, ok := created[p.Name]; ok {
					toBind = append(toBind, now.Sub(t))
				}
			}
			mu.Unlock()
			if p.Status.Phase != corev1.PodRunning || !podReady(p) {
				continue
			}
			seen[p.Name] = true
			mu.Lock()
			if t, ok := created[p.Name]; ok {
				lat = append(lat, now.Sub(t))
			}
			if b, ok := bound[p.Name]; ok {
				toRun = append(toRun, now.Sub(b))
			}
			mu.Unlock()
			if len(seen) == n {
				return
			}
		}
	}()
	create := func(c kubernetes.Interface, i int) error {
		name := fmt.Sprintf("%s-%d", prefix, i)
		mu.Lock()
		created[name] = time.Now()
		mu.Unlock()
		_, err := c.CoreV1().Pods(ns).Create(ctx, startupPod(name), metav1.CreateOptions{})
		return err
	}
	var errs []error
	if interval > 0 {
		tick := time.NewTicker(interval)
		for i := 0; i < n; i++ {
			if err := create(cs, i); err != nil {
				errs = append(errs, err)
			}
			<-tick.C
		}
		tick.Stop()
	} else {
		var wg sync.WaitGroup
		var emu sync.Mutex
		const clients = 20
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				cc := clientset(cfg, true)
				for i := c; i < n; i += clients {
					if err := create(cc, i); err != nil {
						emu.Lock()
						errs = append(errs, err)
						emu.Unlock()
					}
				}
			}(c)
		}
		wg.Wait()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d creates failed, first: %w", len(errs), errs[0])
	}
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		return nil, fmt.Errorf("only %d of %d pods Running+Ready within 3m", got, n)
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("  %s: create → bound p50 %v p99 %v; bound → Running+Ready p50 %v p99 %v; %.1f updates per pod until Running+Ready\n", prefix,
		pct(toBind, 50), pct(toBind, 99), pct(toRun, 50), pct(toRun, 99), float64(updates)/float64(n))
	return lat, nil
}

func startupPod(name string) *corev1.Pod {
	// With a grace period the pod object stays until the kubelet has
	// stopped it (0 would delete the object at once, leaving containers).
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "startup"}},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{{
			Name: "c", Image: images.PauseImage, ImagePullPolicy: corev1.PullNever,
		}}},
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// deleteAllPods deletes every pod in ns and waits until the kubelet has
// finished them (the objects are gone).
func deleteAllPods(ctx context.Context, cs kubernetes.Interface, ns string) error {
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("pods in %s not gone within 3m", ns)
}

func waitNodeReady(ctx context.Context, cs kubernetes.Interface, node string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if nd, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
			for _, c := range nd.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("node %s not Ready within %v", node, timeout)
}

// benchAgent is a `skiff agent` subprocess.
type benchAgent struct {
	cmd    *exec.Cmd
	dir    string
	node   string
	bridge string
	// cgroup is the agent's own cpuacct cgroup (cgroup v1), "" if none:
	// containerd, shims, runc and CNI plugins inherit it.
	cgroup string
}

// cgroupCPU is the CPU time of the agent's cgroup in seconds, 0 without one.
func (a *benchAgent) cgroupCPU() float64 {
	if a.cgroup == "" {
		return 0
	}
	return cpuacctSeconds(a.cgroup)
}

func cpuacctSeconds(dir string) float64 {
	b, err := os.ReadFile(filepath.Join(dir, "cpuacct.usage"))
	if err != nil {
		return 0
	}
	ns, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	return ns / 1e9
}

// podCgroupsCPU is the CPU time so far of the cgroups (cgroup v1 cpuacct)
// of the pods in ns: runc init from the moment it joined them, and the
// containers.
func podCgroupsCPU(ctx context.Context, cs kubernetes.Interface, ns string) (float64, error) {
	l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, p := range l.Items {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/cpuacct/kubepods/*pod" + string(p.UID))
		qos, _ := filepath.Glob("/sys/fs/cgroup/cpuacct/kubepods/*/pod" + string(p.UID))
		for _, d := range append(dirs, qos...) {
			total += cpuacctSeconds(d)
		}
	}
	return total, nil
}

func startAgent(bin, dir, kubeconfig, bridge string) (*benchAgent, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	a := &benchAgent{dir: dir, node: "bench-node", bridge: bridge}
	// Its own nftables tables: agents of other runs on this machine rebuild
	// the default ones.
	cmd := exec.Command(bin, "agent", "--kubeconfig", kubeconfig, "--data-dir", dir, "--node-name", a.node,
		"--cni-bridge", bridge, "--kubelet-port", strconv.Itoa(port), "--node-ip", "127.0.0.1",
		"--proxy-table", bridge+"-proxy", "--netpol-table", bridge+"-netpol")
	cmd.Stderr = os.Stderr // like the server's log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a.cmd = cmd
	// Its own cpuacct cgroup, joined before it starts containerd.
	if cg := fmt.Sprintf("/sys/fs/cgroup/cpuacct/skiff-bench-%d", os.Getpid()); os.Mkdir(cg, 0o755) == nil {
		if os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644) == nil {
			a.cgroup = cg
		} else {
			os.Remove(cg)
		}
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "skiff agent is ready") {
			go func() {
				for sc.Scan() {
				}
			}()
			return a, nil
		}
	}
	cmd.Wait()
	exec.Command("ip", "link", "del", bridge).Run()
	return nil, fmt.Errorf("skiff agent exited before ready")
}

// stop ends the agent, removes what containers are left and its bridge.
func (a *benchAgent) stop() {
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.cmd.Wait()
	if err := cleanNode(a.dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench: clean node:", err)
	}
	exec.Command("ip", "link", "del", a.bridge).Run()
	if a.cgroup != "" {
		os.Remove(a.cgroup) // fails while a shim it started still runs
	}
	for _, t := range [][]string{{"ip", a.bridge + "-proxy"}, {"inet", a.bridge + "-netpol"}, {"ip", "skiff-masq-" + a.bridge}} {
		exec.Command("nft", "delete", "table", t[0], t[1]).Run()
	}
}

// containerdPID is the agent's containerd child.
func (a *benchAgent) containerdPID() int {
	for _, p := range procs() {
		if p.ppid == a.cmd.Process.Pid && p.comm == "containerd" {
			return p.pid
		}
	}
	return -1
}

// shimPIDs are the shims of this agent's containerd, found by the socket
// address on their command line (they re-parent away from containerd).
func (a *benchAgent) shimPIDs() []int {
	sock := containerd.Socket(a.dir)
	var out []int
	for _, p := range procs() {
		if !strings.HasPrefix(p.comm, "containerd-shim") {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
		if strings.Contains(string(cmdline), sock) {
			out = append(out, p.pid)
		}
	}
	return out
}

// cpuSeconds is the CPU time of agent, containerd and shims, with their
// reaped children (runc, CNI plugins).
func (a *benchAgent) cpuSeconds() cpuTimes {
	c := cpuTimes{agent: processCPUAll(a.cmd.Process.Pid)}
	c.containerdSplit = processCPUSplit(a.containerdPID())
	c.containerd = c.containerdSplit.total()
	for _, pid := range a.shimPIDs() {
		c.shimsSplit = c.shimsSplit.add(processCPUSplit(pid))
	}
	c.shims = c.shimsSplit.total()
	return c
}

type cpuTimes struct {
	agent, containerd, shims    float64
	containerdSplit, shimsSplit procCPU
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{c.agent - o.agent, c.containerd - o.containerd, c.shims - o.shims,
		c.containerdSplit.sub(o.containerdSplit), c.shimsSplit.sub(o.shimsSplit)}
}

// procCPU is a process's own CPU time (utime+stime) and that of its
// reaped children (cutime+cstime), in seconds.
type procCPU struct{ self, children float64 }

func (c procCPU) total() float64        { return c.self + c.children }
func (c procCPU) add(o procCPU) procCPU { return procCPU{c.self + o.self, c.children + o.children} }
func (c procCPU) sub(o procCPU) procCPU { return procCPU{c.self - o.self, c.children - o.children} }
func processCPUSplit(pid int) procCPU {
	f := statFields(pid)
	if f == nil {
		return procCPU{}
	}
	v := func(i int) float64 { x, _ := strconv.ParseFloat(f[i], 64); return x / 100 }
	return procCPU{v(11) + v(12), v(13) + v(14)}
}

// statFields are the fields of /proc/<pid>/stat after the command name.
func statFields(pid int) []string {
	if pid <= 0 {
		return nil
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
}
func (c cpuTimes) total() float64 { return c.agent + c.containerd + c.shims }

func (a *benchAgent) shimRSSMB() float64 {
	total := 0.0
	for _, pid := range a.shimPIDs() {
		total += rssMB(pid)
	}
	return total
}

type proc struct {
	pid, ppid int
	comm      string
}

func procs() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(data)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+2:])
		ppid, _ := strconv.Atoi(f[1])
		out = append(out, proc{pid: pid, ppid: ppid, comm: s[open+1 : end]})
	}
	return out
}

// processCPUAll is utime+stime+cutime+cstime of pid in seconds.
func processCPUAll(pid int) float64 { return processCPUSplit(pid).total() }

func rssMB(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
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

// machineCPU is /proc/stat's whole-machine CPU time in clock ticks: all of
// it and the idle part (idle and iowait), and the number of CPUs.
type machineCPU struct {
	total, idle float64
	cpus        int
}

func (m machineCPU) sub(o machineCPU) machineCPU {
	return machineCPU{total: m.total - o.total, idle: m.idle - o.idle, cpus: m.cpus}
}

// readMachineCPU reads /proc/stat; a zero value if it cannot.
func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	return parseMachineCPU(string(b))
}

// parseMachineCPU reads the "cpu" line and counts the "cpuN" lines of a
// /proc/stat; a zero value if the "cpu" line is not first or malformed.
func parseMachineCPU(stat string) machineCPU {
	var m machineCPU
	for i, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if i > 0 {
			m.cpus++
			continue
		}
		if f[0] != "cpu" {
			return machineCPU{}
		}
		for j, v := range f[1:] {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return machineCPU{}
			}
			// guest and guest_nice (j 8, 9) are already in user and nice.
			if j < 8 {
				m.total += n
			}
			if j == 3 || j == 4 {
				m.idle += n
			}
		}
	}
	return m
}
