package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CPU and OOM constants as upstream's kubelet has them (pkg/kubelet/cm and
// pkg/kubelet/qos).
const (
	minShares     = 2
	maxShares     = 262144
	sharesPerCPU  = 1024
	milliCPUToCPU = 1000
	// quotaPeriod is the CFS period in microseconds (100 ms).
	quotaPeriod = 100000
	// minQuota is the smallest CFS quota the kernel takes (1 ms).
	minQuota = 1000

	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
)

// milliCPUToShares is cpu.shares for a cpu request in millicores.
func milliCPUToShares(milli int64) int64 {
	if milli == 0 {
		return minShares
	}
	shares := milli * sharesPerCPU / milliCPUToCPU
	return min(max(shares, minShares), maxShares)
}

// milliCPUToQuota is cpu.cfs_quota_us for a cpu limit in millicores, with
// the given period; 0 means no limit.
func milliCPUToQuota(milli, period int64) int64 {
	if milli == 0 {
		return 0
	}
	return max(milli*period/milliCPUToCPU, minQuota)
}

// qosClass is the pod's QoS class: the API server's if it set one, else
// computed the same way.
func qosClass(p *corev1.Pod) corev1.PodQOSClass {
	if p.Status.QOSClass != "" {
		return p.Status.QOSClass
	}
	return computeQOS(&p.Spec)
}

// computeQOS is upstream's GetPodQOS: BestEffort without any cpu/memory
// request or limit, Guaranteed when every container has cpu and memory
// limits equal to its requests, else Burstable.
func computeQOS(spec *corev1.PodSpec) corev1.PodQOSClass {
	requests, limits := 0, 0
	guaranteed := true
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		for _, n := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[n]
			lim, hasLim := c.Resources.Limits[n]
			if hasReq && !req.IsZero() {
				requests++
			}
			if hasLim && !lim.IsZero() {
				limits++
			} else {
				guaranteed = false
			}
			if hasReq && !req.IsZero() && (!hasLim || req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case requests == 0 && limits == 0:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// oomScoreAdj is upstream's GetContainerOOMScoreAdjust: Guaranteed pods
// -997, BestEffort 1000, Burstable between 3 and 999 by the share of the
// node's memory the container requests.
func oomScoreAdj(qos corev1.PodQOSClass, c *corev1.Container, memCapacity int64) int64 {
	switch qos {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return besteffortOOMScoreAdj
	}
	if memCapacity <= 0 {
		return besteffortOOMScoreAdj - 1
	}
	req := c.Resources.Requests.Memory().Value()
	adj := 1000 - (1000*req)/memCapacity
	if adj < 1000+guaranteedOOMScoreAdj {
		return 1000 + guaranteedOOMScoreAdj
	}
	if adj == besteffortOOMScoreAdj {
		return adj - 1
	}
	return adj
}

// containerResources is the CRI resources of c: cpu shares from its cpu
// request (its limit when only that is set), CFS quota from its cpu
// limit, the memory limit, and the OOM score adjustment of its QoS class.
func containerResources(qos corev1.PodQOSClass, c *corev1.Container, memCapacity int64) *runtimeapi.LinuxContainerResources {
	cpuReq := c.Resources.Requests.Cpu().MilliValue()
	cpuLim := c.Resources.Limits.Cpu().MilliValue()
	if cpuReq == 0 && cpuLim != 0 {
		cpuReq = cpuLim
	}
	r := &runtimeapi.LinuxContainerResources{
		CpuShares:          milliCPUToShares(cpuReq),
		MemoryLimitInBytes: c.Resources.Limits.Memory().Value(),
		OomScoreAdj:        oomScoreAdj(qos, c, memCapacity),
	}
	if cpuLim != 0 {
		r.CpuPeriod, r.CpuQuota = quotaPeriod, milliCPUToQuota(cpuLim, quotaPeriod)
	}
	return r
}

// podResources is what the pod as a whole may use: the larger of its
// regular containers (plus sidecars) and any one init container (plus the
// sidecars started before it), as upstream's PodRequests/PodLimits.
// limited reports whether every container sets a limit of that resource
// (only then does the pod cgroup get one).
func podResources(spec *corev1.PodSpec, pick func(corev1.ResourceRequirements) corev1.ResourceList, name corev1.ResourceName) (total resource.Quantity, limited bool) {
	limited = true
	var sidecars resource.Quantity
	var peak resource.Quantity
	for _, c := range spec.InitContainers {
		q, ok := pick(c.Resources)[name]
		if !ok || q.IsZero() {
			limited = false
		}
		if isSidecar(&c) {
			sidecars.Add(q)
			continue
		}
		cur := sidecars.DeepCopy()
		cur.Add(q)
		if cur.Cmp(peak) > 0 {
			peak = cur
		}
	}
	total = sidecars.DeepCopy()
	for _, c := range spec.Containers {
		q, ok := pick(c.Resources)[name]
		if !ok || q.IsZero() {
			limited = false
		}
		total.Add(q)
	}
	if peak.Cmp(total) > 0 {
		total = peak
	}
	return total, limited
}

func requestsOf(r corev1.ResourceRequirements) corev1.ResourceList {
	// A limit without request counts as the request, as defaulting does.
	out := corev1.ResourceList{}
	for n, q := range r.Limits {
		out[n] = q
	}
	for n, q := range r.Requests {
		out[n] = q
	}
	return out
}

func limitsOf(r corev1.ResourceRequirements) corev1.ResourceList { return r.Limits }

// podCgroupValues is what the pod's cgroup gets (cgroup v1 file → value):
// cpu.shares from the summed cpu requests (2 for BestEffort), and for
// Guaranteed and Burstable pods whose every container has a limit, the
// summed cpu quota and memory limit.
func podCgroupValues(p *corev1.Pod) map[string]string {
	qos := qosClass(p)
	vals := map[string]string{}
	if qos == corev1.PodQOSBestEffort {
		vals["cpu/cpu.shares"] = strconv.Itoa(minShares)
		return vals
	}
	cpuReq, _ := podResources(&p.Spec, requestsOf, corev1.ResourceCPU)
	vals["cpu/cpu.shares"] = strconv.FormatInt(milliCPUToShares(cpuReq.MilliValue()), 10)
	if cpuLim, ok := podResources(&p.Spec, limitsOf, corev1.ResourceCPU); ok {
		vals["cpu/cpu.cfs_period_us"] = strconv.Itoa(quotaPeriod)
		vals["cpu/cpu.cfs_quota_us"] = strconv.FormatInt(milliCPUToQuota(cpuLim.MilliValue(), quotaPeriod), 10)
	}
	if memLim, ok := podResources(&p.Spec, limitsOf, corev1.ResourceMemory); ok {
		vals["memory/memory.limit_in_bytes"] = strconv.FormatInt(memLim.Value(), 10)
	}
	return vals
}

// cgroupFS is the cgroup v1 mount; a variable so tests can point it at a
// temporary directory.
var cgroupFS = "/sys/fs/cgroup"

// qosCgroups are the QoS-level cgroups, by class.
var qosCgroups = map[corev1.PodQOSClass]string{
	corev1.PodQOSGuaranteed: cgroupRoot,
	corev1.PodQOSBurstable:  cgroupRoot + "/burstable",
	corev1.PodQOSBestEffort: cgroupRoot + "/besteffort",
}

// podCgroupOf is the pod's cgroup (the sandbox's cgroup parent):
// <qos level>/pod<uid>, as upstream names it.
func podCgroupOf(p *corev1.Pod) string {
	return qosCgroups[qosClass(p)] + "/pod" + string(p.UID)
}

// podCgroupDirs are the directories a pod's cgroup may have in every
// hierarchy (it is in exactly one QoS level, but the pod object may be
// gone when it is removed).
func podCgroupDirs(uid string) []string {
	var dirs []string
	for _, q := range []string{cgroupRoot, cgroupRoot + "/burstable", cgroupRoot + "/besteffort"} {
		d, _ := filepath.Glob(filepath.Join(cgroupFS, "*", q, "pod"+uid))
		dirs = append(dirs, d...)
		dirs = append(dirs, filepath.Join(cgroupFS, q, "pod"+uid)) // cgroup v2
	}
	return dirs
}

// setupPodCgroup creates the pod's cgroup in the cpu and memory hierarchies
// (cgroupfs driver, cgroup v1), below its QoS level, and writes its limits
// before the sandbox starts in it; runc then creates the containers'
// cgroups below. The QoS levels' cpu.shares follow (updateQOSCgroups).
func setupPodCgroup(p *corev1.Pod) error {
	if _, err := os.Stat(filepath.Join(cgroupFS, "cpu")); err != nil {
		return nil // not cgroup v1: the runtime's defaults apply
	}
	// Period before quota: the kernel checks quota against the period.
	vals := podCgroupValues(p)
	for _, f := range []string{"cpu/cpu.shares", "cpu/cpu.cfs_period_us", "cpu/cpu.cfs_quota_us", "memory/memory.limit_in_bytes"} {
		v, ok := vals[f]
		if !ok {
			continue
		}
		ctrl, file := filepath.Split(f)
		dir := filepath.Join(cgroupFS, ctrl, podCgroupOf(p))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create pod cgroup: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil {
			return fmt.Errorf("set pod cgroup %s to %s: %w", f, v, err)
		}
	}
	return updateQOSCgroups()
}

// updateQOSCgroups sets the cpu.shares of the QoS levels as upstream's QoS
// container manager does: 2 for besteffort/, and for burstable/ the sum of
// its pods' shares (their cpu requests; at least 2). The sum is read from
// the pod cgroups in the tree, so that it holds whoever created them.
func updateQOSCgroups() error {
	cpu := filepath.Join(cgroupFS, "cpu")
	if _, err := os.Stat(cpu); err != nil {
		return nil
	}
	be := filepath.Join(cpu, qosCgroups[corev1.PodQOSBestEffort])
	bu := filepath.Join(cpu, qosCgroups[corev1.PodQOSBurstable])
	for _, d := range []string{be, bu} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create QoS cgroup: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(be, "cpu.shares"), []byte(strconv.Itoa(minShares)), 0o644); err != nil {
		return fmt.Errorf("set besteffort cpu.shares: %w", err)
	}
	var sum int64
	pods, _ := filepath.Glob(filepath.Join(bu, "pod*", "cpu.shares"))
	for _, f := range pods {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // removed meanwhile
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			sum += n
		}
	}
	sum = min(max(sum, minShares), maxShares)
	if err := os.WriteFile(filepath.Join(bu, "cpu.shares"), []byte(strconv.FormatInt(sum, 10)), 0o644); err != nil {
		return fmt.Errorf("set burstable cpu.shares: %w", err)
	}
	return nil
}
