package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cniConfigFile is the pod network config the kubelet owns in the conf dir.
const cniConfigFile = "10-skiff.conflist"

// cniConfig is the node's pod network: a bridge that is the pods' gateway
// (egress is masqueraded by the agent, not the plugin, so pod-to-pod
// traffic across nodes keeps its source), host-local addresses from podCIDR, and
// portmap for hostPort unless portmap is false (the config of the runtime
// handler for pods without host ports). The runtime adds the loopback itself.
func (k *Kubelet) cniConfig(podCIDR string, portmap bool) ([]byte, error) {
	plugins := []any{
		map[string]any{
			"type":        "bridge",
			"bridge":      k.cfg.Bridge,
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": podCIDR}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": k.cfg.ipamDir(),
			},
		},
	}
	if portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true})
	}
	// One network name for both: a sandbox's IP allocation and teardown
	// do not depend on which of the two it was started with.
	conf := map[string]any{"cniVersion": "1.0.0", "name": "skiff", "plugins": plugins}
	return json.MarshalIndent(conf, "", "  ")
}

// setupNetwork turns on IPv4 forwarding, writes the CNI config for podCIDR
// and waits until the runtime reports itself and its network ready (the
// node's Ready condition).
func (k *Kubelet) setupNetwork(ctx context.Context, podCIDR string) error {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("kubelet: enable ip_forward: %w", err)
	}
	// The config without portmap first: the runtime reports its network
	// ready once the default one is loaded.
	if k.cfg.NoHostPortCNIConfDir != "" {
		if _, err := k.writeCNIConfig(k.cfg.NoHostPortCNIConfDir, podCIDR, false); err != nil {
			return err
		}
	}
	path, err := k.writeCNIConfig(k.cfg.CNIConfDir, podCIDR, true)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := readyCondition(k.runtimeStatus(ctx))
		if ready.Status == corev1.ConditionTrue {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubelet: runtime not ready after writing %s: %s", path, ready.Message)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeCNIConfig writes the pod network config for podCIDR into dir
// unless it is there already, and returns its path.
func (k *Kubelet) writeCNIConfig(dir, podCIDR string, portmap bool) (string, error) {
	b, err := k.cniConfig(podCIDR, portmap)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("kubelet: cni conf dir: %w", err)
	}
	path := filepath.Join(dir, cniConfigFile)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(b) {
		return path, nil
	}
	tmp := path + ".tmp" // a rename, so the runtime never loads half a file
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return "", fmt.Errorf("kubelet: write cni config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("kubelet: write cni config: %w", err)
	}
	k.log.Info("wrote pod network config", "path", path, "podCIDR", podCIDR, "bridge", k.cfg.Bridge, "portmap", portmap)
	return path, nil
}

// runtimeStatus asks the runtime for its conditions.
func (k *Kubelet) runtimeStatus(ctx context.Context) (*runtimeapi.RuntimeStatus, error) {
	r, err := k.rt.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, err
	}
	return r.GetStatus(), nil
}

// hostDNS is the DNS config pods get for now: the host's resolv.conf.
func hostDNS() *runtimeapi.DNSConfig {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	dns := &runtimeapi.DNSConfig{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			dns.Servers = append(dns.Servers, f[1])
		case "search":
			dns.Searches = append(dns.Searches, f[1:]...)
		case "options":
			dns.Options = append(dns.Options, f[1:]...)
		}
	}
	return dns
}

// runtimeHandler is the runtime handler a sandbox starts with: the one
// without portmap in its network config unless the pod has host ports.
// Its containers and its teardown follow the sandbox's handler.
func (k *Kubelet) runtimeHandler(cfg *runtimeapi.PodSandboxConfig) string {
	if len(cfg.GetPortMappings()) > 0 {
		return ""
	}
	return k.cfg.NoHostPortHandler
}
