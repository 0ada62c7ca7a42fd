package agent

import (
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/kubelet"
)

// DefaultExternalCNIConfDir is where an external containerd or CRI-O reads
// its network configs unless configured otherwise, and so where the agent
// writes the pod network's config with --container-runtime-endpoint.
const DefaultExternalCNIConfDir = "/etc/cni/net.d"

// ParseNodeLabels parses --node-label values ("key=value", each may be a
// comma list as K3s's) and validates them with upstream's kubelet rules
// (kubelet.ValidateNodeLabels). A later value of a key wins.
func ParseNodeLabels(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	labels := map[string]string{}
	for _, f := range splitList(flags) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("--node-label %q: want key=value", f)
		}
		labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := kubelet.ValidateNodeLabels(labels); err != nil {
		return nil, err
	}
	return labels, nil
}

// ParseNodeTaints parses --node-taint values ("key=value:Effect" or
// "key:Effect", each may be a comma list) as upstream's
// --register-with-taints, and validates them.
func ParseNodeTaints(flags []string) ([]corev1.Taint, error) {
	var taints []corev1.Taint
	seen := map[string]bool{}
	for _, f := range splitList(flags) {
		kv, effect, ok := cutLast(f, ":")
		if !ok {
			return nil, fmt.Errorf("--node-taint %q: want key=value:Effect or key:Effect", f)
		}
		k, v, _ := strings.Cut(kv, "=")
		t := corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)}
		if err := kubelet.ValidateTaint(t); err != nil {
			return nil, err
		}
		if id := t.Key + ":" + string(t.Effect); seen[id] {
			return nil, fmt.Errorf("--node-taint %q: a second taint with key %s and effect %s", f, t.Key, t.Effect)
		} else {
			seen[id] = true
		}
		taints = append(taints, t)
	}
	return taints, nil
}

// ParseRuntimeEndpoint turns --container-runtime-endpoint (unix:///path or
// a bare absolute path) into a unix:// endpoint; "" stays "" (the agent's
// own containerd).
func ParseRuntimeEndpoint(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	path := s
	if i := strings.Index(s, "://"); i >= 0 {
		if s[:i] != "unix" {
			return "", fmt.Errorf("--container-runtime-endpoint %q: only unix:// sockets are supported", s)
		}
		path = s[i+3:]
	}
	if path == "" || !filepath.IsAbs(path) {
		return "", fmt.Errorf("--container-runtime-endpoint %q: want unix:///absolute/path or an absolute path", s)
	}
	return "unix://" + filepath.Clean(path), nil
}

func splitList(flags []string) []string {
	var out []string
	for _, f := range flags {
		for _, p := range strings.Split(f, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
