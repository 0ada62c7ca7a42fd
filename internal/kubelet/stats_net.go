package kubelet

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/server/statsapi"
)

// parseNetDev reads a /proc/<pid>/net/dev: the counters of every
// interface but the loopback.
func parseNetDev(path string) []statsapi.InterfaceStats {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []statsapi.InterfaceStats
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		n := func(i int) *uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return &v }
		// Receive: bytes packets errs ...; transmit from field 8 on.
		out = append(out, statsapi.InterfaceStats{Name: name, RxBytes: n(0), RxErrors: n(2), TxBytes: n(8), TxErrors: n(10)})
	}
	return out
}

// networkStats are the counters of the interfaces in /proc/<pid>/net/dev,
// with def (the default route's interface) as the top-level figures.
func networkStats(netDev, def string, now time.Time) *statsapi.NetworkStats {
	ifs := parseNetDev(netDev)
	if len(ifs) == 0 {
		return nil
	}
	ns := &statsapi.NetworkStats{Time: metaTime(now), Interfaces: ifs}
	for _, i := range ifs {
		if i.Name == def {
			ns.InterfaceStats = i
		}
	}
	return ns
}

// defaultInterface is the interface of the host's default route.
func defaultInterface() string {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "00000000" {
			return f[0]
		}
	}
	return ""
}

// sandboxNetwork is a pod's network usage, read in its sandbox's network
// namespace (through the sandbox process's /proc entry); eth0 is the
// pod's interface (CNI_IFNAME). hostNetwork pods have none of their own.
func (s *statsProvider) sandboxNetwork(ctx context.Context, id string, now time.Time) *statsapi.NetworkStats {
	r, err := s.k.rt.PodSandboxStatus(ctx, id, true)
	if err != nil || r.GetStatus().GetLinux().GetNamespaces().GetOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE {
		return nil
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if json.Unmarshal([]byte(r.Info["info"]), &info) != nil || info.Pid <= 0 {
		return nil
	}
	return networkStats(filepath.Join("/proc", strconv.Itoa(info.Pid), "net", "dev"), "eth0", now)
}
