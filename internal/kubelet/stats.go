package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/server"
	"github.com/skiff-sh/skiff/internal/kubelet/server/statsapi"
)

// statsProvider fills the kubelet API's stats Summary as upstream's CRI
// stats provider does: containers from the runtime's ListContainerStats
// (cpu, memory, writable layer), pods and the node from their cgroups
// (cgroup v1 cpuacct and memory), file systems from statfs, logs and
// volumes by walking their directories.
type statsProvider struct {
	k *Kubelet
	// rates holds the last cpu sample of each node, pod and container,
	// for usageNanoCores.
	rates *cpuRates
	// runtime is the CRI runtime's process, for its system container.
	runtime runtimeProcess
	// claims are the host paths of the pods' persistentVolumeClaim
	// volumes, by "<pod uid>/<volume name>"; entries of pods without a
	// sandbox are dropped at each Summary.
	claimsMu sync.Mutex
	claims   map[string]string
}

var _ server.StatsProvider = (*statsProvider)(nil)

func newStatsProvider(k *Kubelet) *statsProvider {
	return &statsProvider{k: k, rates: newCPURates(), claims: map[string]string{}}
}

// Summary is the node's and its running pods' usage.
func (s *statsProvider) Summary(ctx context.Context, cpuAndMemory bool) (*statsapi.Summary, error) {
	k := s.k
	now := time.Now()
	out := &statsapi.Summary{Node: statsapi.NodeStats{NodeName: k.cfg.NodeName, StartTime: metaTime(bootTime())}}
	n := &out.Node
	if usage, ok := cgroupCPU("/"); ok {
		n.CPU = s.cpu("node", usage, 0, now)
	} else if usage, ok := procCPU(); ok {
		n.CPU = s.cpu("node", usage, 0, now)
	}
	m, ok := cgroupMemory("/")
	if !ok {
		m, ok = nodeMemory("/proc/meminfo", "/proc/vmstat")
	}
	if ok {
		n.Memory = memoryStats(m, now)
		if total := uint64(memTotal()); total > m.workingSet {
			n.Memory.AvailableBytes = ptr(total - m.workingSet)
		}
	}
	n.SystemContainers = s.systemContainers(now)
	var imageFs *statsapi.FsStats
	if !cpuAndMemory {
		n.Fs, _ = statFs(k.cfg.DataDir, now)
		imageFs = s.imageFs(ctx, now)
		n.Runtime = &statsapi.RuntimeStats{ImageFs: imageFs, ContainerFs: imageFs}
		n.Rlimit = rlimit(now)
		n.Network = networkStats("/proc/self/net/dev", defaultInterface(), now)
	}

	sandboxes, err := k.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
	if err != nil {
		return nil, err
	}
	containers, err := k.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return nil, err
	}
	cstats, err := k.rt.ListContainerStats(ctx, nil)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*runtimeapi.ContainerStats, len(cstats))
	for _, st := range cstats {
		if st.GetAttributes() != nil {
			byID[st.Attributes.Id] = st
		}
	}
	bySandbox := map[string][]*runtimeapi.Container{}
	for _, c := range containers {
		bySandbox[c.PodSandboxId] = append(bySandbox[c.PodSandboxId], c)
	}
	out.Pods = []statsapi.PodStats{}
	live := map[string]bool{}
	for _, sb := range sandboxes {
		if sb.Metadata == nil {
			continue
		}
		live[sb.Metadata.Uid] = true
		ps := s.podStats(ctx, sb, bySandbox[sb.Id], byID, imageFs, cpuAndMemory, now)
		if !cpuAndMemory {
			ps.Network = s.sandboxNetwork(ctx, sb.Id, now)
		}
		out.Pods = append(out.Pods, ps)
	}
	s.rates.forget(now)
	s.forgetClaims(live)
	return out, nil
}

// imageFs is the runtime's image file system: its used bytes from the
// runtime, capacity and free space from statfs of its mount point.
func (s *statsProvider) imageFs(ctx context.Context, now time.Time) *statsapi.FsStats {
	info, err := s.k.rt.ImageFsInfo(ctx)
	if err != nil || len(info.ImageFilesystems) == 0 {
		return nil
	}
	u := info.ImageFilesystems[0]
	fs, ok := statFs(u.GetFsId().GetMountpoint(), now)
	if !ok {
		fs = &statsapi.FsStats{Time: metaTime(now)}
	}
	fs.UsedBytes = ptr(u.GetUsedBytes().GetValue())
	if u.InodesUsed != nil {
		fs.InodesUsed = ptr(u.InodesUsed.Value)
	}
	return fs
}

func (s *statsProvider) podStats(ctx context.Context, sb *runtimeapi.PodSandbox, cs []*runtimeapi.Container, byID map[string]*runtimeapi.ContainerStats,
	imageFs *statsapi.FsStats, cpuAndMemory bool, now time.Time) statsapi.PodStats {
	md := sb.Metadata
	ps := statsapi.PodStats{
		PodRef:     statsapi.PodReference{Name: md.Name, Namespace: md.Namespace, UID: md.Uid},
		StartTime:  metaTime(time.Unix(0, sb.CreatedAt)),
		Containers: []statsapi.ContainerStats{},
	}
	podCg := findPodCgroup(md.Uid)
	var ephemeral uint64
	for _, c := range cs {
		if c.Metadata == nil {
			continue
		}
		st := s.containerStats(c, byID[c.Id], podCg, imageFs, cpuAndMemory, now)
		if !cpuAndMemory {
			st.Logs = dirFs(filepath.Join(s.k.cfg.podLogDir(md.Namespace, md.Name, md.Uid), c.Metadata.Name), now)
			for _, f := range []*statsapi.FsStats{st.Rootfs, st.Logs} {
				if f != nil && f.UsedBytes != nil {
					ephemeral += *f.UsedBytes
				}
			}
		}
		ps.Containers = append(ps.Containers, st)
	}
	if podCg != "" {
		if usage, ok := cgroupCPU(podCg); ok {
			ps.CPU = s.cpu("pod/"+md.Uid, usage, 0, now)
		}
		if m, ok := cgroupMemory(podCg); ok {
			ps.Memory = memoryStats(m, now)
		}
	}
	if ps.CPU == nil || ps.Memory == nil {
		sumContainers(&ps, now)
	}
	if cpuAndMemory {
		return ps
	}
	for _, v := range s.volumeStats(ctx, md, now) {
		ps.VolumeStats = append(ps.VolumeStats, v.VolumeStats)
		if v.ephemeral && v.UsedBytes != nil {
			ephemeral += *v.UsedBytes
		}
	}
	if fs, ok := statFs(s.k.cfg.DataDir, now); ok {
		fs.UsedBytes, fs.InodesUsed, fs.Inodes, fs.InodesFree = ptr(ephemeral), nil, nil, nil
		ps.EphemeralStorage = fs
	}
	return ps
}

// containerStats is one container's usage: the runtime's figures, with
// those it leaves out read from the container's cgroup.
func (s *statsProvider) containerStats(c *runtimeapi.Container, st *runtimeapi.ContainerStats, podCg string,
	imageFs *statsapi.FsStats, cpuAndMemory bool, now time.Time) statsapi.ContainerStats {
	out := statsapi.ContainerStats{Name: c.Metadata.Name, StartTime: metaTime(time.Unix(0, c.CreatedAt))}
	cg := ""
	if podCg != "" {
		cg = podCg + "/" + c.Id // cgroupfs driver: <pod cgroup>/<container id>
	}
	if u := st.GetCpu(); u.GetUsageCoreNanoSeconds() != nil {
		out.CPU = s.cpu("container/"+c.Id, u.UsageCoreNanoSeconds.Value, u.GetUsageNanoCores().GetValue(), now)
	} else if usage, ok := cgroupCPU(cg); ok && cg != "" {
		out.CPU = s.cpu("container/"+c.Id, usage, 0, now)
	}
	var m cgroupMem
	var fromCg bool
	if cg != "" {
		m, fromCg = cgroupMemory(cg)
	}
	if mem := st.GetMemory(); mem.GetWorkingSetBytes() != nil {
		ms := &statsapi.MemoryStats{Time: metaTime(now), WorkingSetBytes: ptr(mem.WorkingSetBytes.Value)}
		pick := func(cri *runtimeapi.UInt64Value, cgv uint64) *uint64 {
			if cri.GetValue() > 0 || !fromCg {
				return ptr(cri.GetValue())
			}
			return ptr(cgv)
		}
		ms.UsageBytes = pick(mem.UsageBytes, m.usage)
		ms.RSSBytes = pick(mem.RssBytes, m.rss)
		ms.PageFaults = pick(mem.PageFaults, m.pgfault)
		ms.MajorPageFaults = pick(mem.MajorPageFaults, m.pgmajfault)
		if a := mem.GetAvailableBytes().GetValue(); a > 0 {
			ms.AvailableBytes = ptr(a)
		} else if fromCg && m.limit < noLimit && m.limit > m.workingSet {
			ms.AvailableBytes = ptr(m.limit - m.workingSet)
		}
		out.Memory = ms
	} else if fromCg {
		out.Memory = memoryStats(m, now)
	}
	if !cpuAndMemory {
		if wl := st.GetWritableLayer(); wl != nil {
			fs := &statsapi.FsStats{Time: metaTime(now), UsedBytes: ptr(wl.GetUsedBytes().GetValue())}
			if wl.InodesUsed != nil {
				fs.InodesUsed = ptr(wl.InodesUsed.Value)
			}
			if imageFs != nil {
				fs.CapacityBytes, fs.AvailableBytes = imageFs.CapacityBytes, imageFs.AvailableBytes
				fs.Inodes, fs.InodesFree = imageFs.Inodes, imageFs.InodesFree
			}
			out.Rootfs = fs
		}
	}
	return out
}

// sumContainers fills a pod's missing cpu and memory with its containers'
// sums (when its cgroup cannot be read).
func sumContainers(ps *statsapi.PodStats, now time.Time) {
	var cpu, ws uint64
	var haveCPU, haveMem bool
	for _, c := range ps.Containers {
		if c.CPU != nil && c.CPU.UsageCoreNanoSeconds != nil {
			cpu += *c.CPU.UsageCoreNanoSeconds
			haveCPU = true
		}
		if c.Memory != nil && c.Memory.WorkingSetBytes != nil {
			ws += *c.Memory.WorkingSetBytes
			haveMem = true
		}
	}
	if ps.CPU == nil && haveCPU {
		ps.CPU = &statsapi.CPUStats{Time: metaTime(now), UsageCoreNanoSeconds: ptr(cpu)}
	}
	if ps.Memory == nil && haveMem {
		ps.Memory = &statsapi.MemoryStats{Time: metaTime(now), WorkingSetBytes: ptr(ws)}
	}
}

// volumeStat is a pod volume's usage; ephemeral volumes (those on the
// node's disk: all but memory-backed emptyDirs and the volumes on a tmpfs)
// count in the pod's ephemeral-storage.
type volumeStat struct {
	statsapi.VolumeStats
	ephemeral bool
}

// volumeStats are the usages of the pod's volumes that live in its pod
// directory (emptyDir, configMap, secret, downwardAPI, projected) and of
// its persistentVolumeClaims (their volume's directory, with the claim's
// name).
func (s *statsProvider) volumeStats(ctx context.Context, md *runtimeapi.PodSandboxMetadata, now time.Time) []volumeStat {
	if s.k.podLister == nil {
		return nil
	}
	p, err := s.k.podLister.Pods(md.Namespace).Get(md.Name)
	if err != nil || string(p.UID) != md.Uid {
		return nil
	}
	var out []volumeStat
	for _, v := range p.Spec.Volumes {
		if c := v.PersistentVolumeClaim; c != nil {
			path := s.claimPath(ctx, p, v.Name, c.ClaimName)
			if fs := dirFs(path, now); path != "" && fs != nil {
				out = append(out, volumeStat{VolumeStats: statsapi.VolumeStats{FsStats: *fs, Name: v.Name,
					PVCRef: &statsapi.PVCReference{Name: c.ClaimName, Namespace: p.Namespace}}})
			}
			continue
		}
		plugin := volumePluginDir(&v)
		if plugin == "" {
			continue
		}
		dir := s.k.volumeDir(md.Uid, plugin, v.Name)
		fs := dirFs(dir, now)
		if fs == nil {
			continue
		}
		// Memory-backed emptyDirs and the volumes kept on a tmpfs
		// (Config.VolatileDir) take memory, not the node's disk.
		mem := v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory || onTmpfs(dir)
		out = append(out, volumeStat{VolumeStats: statsapi.VolumeStats{FsStats: *fs, Name: v.Name}, ephemeral: !mem})
	}
	return out
}

// claimPath is the host directory of a pod's claim volume: the bound
// persistent volume's hostPath or local path, as the pod mounted it. It is
// looked up once per pod and volume; "" while it cannot be.
func (s *statsProvider) claimPath(ctx context.Context, p *corev1.Pod, volume, claimName string) string {
	key := string(p.UID) + "/" + volume
	s.claimsMu.Lock()
	path, ok := s.claims[key]
	s.claimsMu.Unlock()
	if ok {
		return path
	}
	pv, err := boundVolume(ctx, s.k.cfg.Client, p.Namespace, claimName)
	if err != nil {
		return ""
	}
	switch {
	case pv.Spec.HostPath != nil:
		path = pv.Spec.HostPath.Path
	case pv.Spec.Local != nil:
		path = pv.Spec.Local.Path
	default:
		return ""
	}
	s.claimsMu.Lock()
	s.claims[key] = path
	s.claimsMu.Unlock()
	return path
}

// forgetClaims drops the claim paths of pods not in live (pod UIDs).
func (s *statsProvider) forgetClaims(live map[string]bool) {
	s.claimsMu.Lock()
	defer s.claimsMu.Unlock()
	for key := range s.claims {
		uid, _, _ := strings.Cut(key, "/")
		if !live[uid] {
			delete(s.claims, key)
		}
	}
}

// volumePluginDir is the directory of a volume's plugin under the pod's
// volumes/ (volumes.go), "" for volumes that live elsewhere.
// onTmpfs reports whether dir is on a tmpfs.
func onTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

func volumePluginDir(v *corev1.Volume) string {
	switch {
	case v.EmptyDir != nil:
		return emptyDirPlugin
	case v.ConfigMap != nil:
		return "kubernetes.io~configmap"
	case v.Secret != nil:
		return "kubernetes.io~secret"
	case v.DownwardAPI != nil:
		return "kubernetes.io~downward-api"
	case v.Projected != nil:
		return "kubernetes.io~projected"
	}
	return ""
}

// findPodCgroup is the pod's cgroup (relative to a hierarchy) at whichever
// QoS level it is, or "".
func findPodCgroup(uid string) string {
	probe := func(dir string) string { return filepath.Join(cgroupFS, "cpuacct", dir, "cpuacct.usage") }
	if cgroupV2() {
		probe = func(dir string) string { return filepath.Join(cgroupFS, dir, "cgroup.procs") }
	}
	for _, q := range []string{cgroupRoot, cgroupRoot + "/burstable", cgroupRoot + "/besteffort"} {
		dir := q + "/pod" + uid
		if _, err := os.Stat(probe(dir)); err == nil {
			return dir
		}
	}
	return ""
}

func memoryStats(m cgroupMem, now time.Time) *statsapi.MemoryStats {
	ms := &statsapi.MemoryStats{Time: metaTime(now), UsageBytes: ptr(m.usage), WorkingSetBytes: ptr(m.workingSet),
		RSSBytes: ptr(m.rss), PageFaults: ptr(m.pgfault), MajorPageFaults: ptr(m.pgmajfault)}
	if m.limit > 0 && m.limit < noLimit && m.limit > m.workingSet {
		ms.AvailableBytes = ptr(m.limit - m.workingSet)
	}
	return ms
}

// cpu is a CPUStats with the runtime's rate if it gave one, else the rate
// since this key's previous sample.
func (s *statsProvider) cpu(key string, usage, nanoCores uint64, now time.Time) *statsapi.CPUStats {
	st := &statsapi.CPUStats{Time: metaTime(now), UsageCoreNanoSeconds: ptr(usage)}
	rate, ok := s.rates.observe(key, usage, now)
	switch {
	case nanoCores > 0:
		st.UsageNanoCores = ptr(nanoCores)
	case ok:
		st.UsageNanoCores = ptr(rate)
	}
	return st
}

// cpuRates turns cumulative cpu times into rates. A sample is kept for at
// least minWindow, so that frequent scrapes still see a steady rate.
type cpuRates struct {
	mu      sync.Mutex
	samples map[string]cpuSample
}

type cpuSample struct {
	t     time.Time
	usage uint64
	// last is when the key was last seen, to forget gone containers.
	last time.Time
}

const (
	minRateWindow = time.Second
	forgetAfter   = 5 * time.Minute
)

func newCPURates() *cpuRates { return &cpuRates{samples: map[string]cpuSample{}} }

func (r *cpuRates) observe(key string, usage uint64, now time.Time) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, seen := r.samples[key]
	if !seen || usage < prev.usage || !now.After(prev.t) {
		r.samples[key] = cpuSample{t: now, usage: usage, last: now}
		return 0, false
	}
	dt := now.Sub(prev.t)
	rate := uint64(float64(usage-prev.usage) / dt.Seconds())
	if dt >= minRateWindow {
		prev.t, prev.usage = now, usage
	}
	prev.last = now
	r.samples[key] = prev
	return rate, true
}

// forget drops the samples of keys not seen for a while.
func (r *cpuRates) forget(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, s := range r.samples {
		if now.Sub(s.last) > forgetAfter {
			delete(r.samples, k)
		}
	}
}

func metaTime(t time.Time) metav1.Time { return metav1.NewTime(t) }
