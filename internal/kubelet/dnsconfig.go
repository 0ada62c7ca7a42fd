package kubelet

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Limits upstream's kubelet applies to a pod's resolv.conf.
const (
	maxDNSNameservers     = 3
	maxDNSSearchPaths     = 32
	maxDNSSearchListChars = 2048
)

// clusterDNSOptions are the options of a ClusterFirst pod, as upstream's.
var clusterDNSOptions = []string{"ndots:5"}

// DNSSettings is what a pod's DNS config is computed from besides the pod.
type DNSSettings struct {
	// ClusterDNS are the cluster resolvers' addresses (the kube-dns
	// Service's cluster IP); empty makes ClusterFirst pods fall back to
	// Default, with a warning.
	ClusterDNS []string
	// ClusterDomain is the cluster's DNS zone, e.g. cluster.local.
	ClusterDomain string
	// Host is the node's own resolv.conf, parsed.
	Host *runtimeapi.DNSConfig
}

// PodDNSConfig is the resolv.conf content of pod p per its dnsPolicy and
// dnsConfig, as upstream's kubelet computes it; the warnings are what
// upstream reports as events (cluster DNS missing, limits exceeded).
func PodDNSConfig(p *corev1.Pod, s DNSSettings) (*runtimeapi.DNSConfig, []string) {
	var warnings []string
	host := s.Host
	if host == nil {
		host = &runtimeapi.DNSConfig{}
	}
	policy := p.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	out := &runtimeapi.DNSConfig{}
	cluster := false
	switch policy {
	case corev1.DNSNone:
	case corev1.DNSClusterFirstWithHostNet:
		cluster = true
	case corev1.DNSClusterFirst:
		// A host-network pod asking for ClusterFirst gets the host's DNS,
		// as upstream (ClusterFirstWithHostNet is the way to opt in).
		cluster = !p.Spec.HostNetwork
	}
	if cluster && len(s.ClusterDNS) == 0 {
		warnings = append(warnings, fmt.Sprintf("kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.",
			policy, corev1.DNSDefault))
		cluster = false
		policy = corev1.DNSDefault
	}
	switch {
	case cluster:
		out.Servers = append([]string(nil), s.ClusterDNS...)
		out.Searches = append([]string(nil), host.Searches...)
		if s.ClusterDomain != "" {
			d := strings.Trim(s.ClusterDomain, ".")
			out.Searches = append([]string{p.Namespace + ".svc." + d, "svc." + d, d}, host.Searches...)
		}
		out.Options = append([]string(nil), clusterDNSOptions...)
	case policy != corev1.DNSNone:
		out.Servers = append([]string(nil), host.Servers...)
		out.Searches = append([]string(nil), host.Searches...)
		out.Options = append([]string(nil), host.Options...)
	}
	if c := p.Spec.DNSConfig; c != nil {
		out.Servers = append(out.Servers, c.Nameservers...)
		out.Searches = append(out.Searches, c.Searches...)
		out.Options = mergeDNSOptions(out.Options, c.Options)
	}
	out.Servers = omitDuplicates(out.Servers)
	out.Searches = omitDuplicates(out.Searches)
	if len(out.Servers) > maxDNSNameservers {
		warnings = append(warnings, fmt.Sprintf("Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: %s",
			strings.Join(out.Servers[:maxDNSNameservers], " ")))
		out.Servers = out.Servers[:maxDNSNameservers]
	}
	if searches, trimmed := searchesFitLimits(out.Searches); trimmed {
		warnings = append(warnings, fmt.Sprintf("Search Line limits were exceeded, some search paths have been omitted, the applied search line is: %s",
			strings.Join(searches, " ")))
		out.Searches = searches
	}
	return out, warnings
}

// searchesFitLimits keeps the leading search paths that fit upstream's
// limits on count and total length.
func searchesFitLimits(searches []string) ([]string, bool) {
	trimmed := false
	if len(searches) > maxDNSSearchPaths {
		searches, trimmed = searches[:maxDNSSearchPaths], true
	}
	for len(searches) > 0 && len(strings.Join(searches, " ")) > maxDNSSearchListChars {
		searches, trimmed = searches[:len(searches)-1], true
	}
	return searches, trimmed
}

// mergeDNSOptions overrides existing "name[:value]" options with the pod's
// by name, keeping first-seen order.
func mergeDNSOptions(existing []string, pod []corev1.PodDNSConfigOption) []string {
	var names []string
	values := map[string]string{}
	set := func(name, value string) {
		if _, ok := values[name]; !ok {
			names = append(names, name)
		}
		values[name] = value
	}
	for _, o := range existing {
		name, value, _ := strings.Cut(o, ":")
		set(name, value)
	}
	for _, o := range pod {
		value := ""
		if o.Value != nil {
			value = *o.Value
		}
		set(o.Name, value)
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if values[n] != "" {
			out = append(out, n+":"+values[n])
		} else {
			out = append(out, n)
		}
	}
	return out
}

func omitDuplicates(in []string) []string {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// podDNS is the DNS config of p's sandbox; warnings become events on the
// pod, once per pod.
func (k *Kubelet) podDNS(p *corev1.Pod) *runtimeapi.DNSConfig {
	cfg, warnings := PodDNSConfig(p, DNSSettings{ClusterDNS: k.cfg.ClusterDNS, ClusterDomain: k.cfg.ClusterDomain, Host: hostDNS()})
	if len(warnings) > 0 && k.log != nil && k.cfg.Client != nil {
		if _, done := k.dnsWarned.LoadOrStore(p.UID, true); !done {
			for _, w := range warnings {
				k.log.Warn("pod DNS", "pod", p.Namespace+"/"+p.Name, "warning", w)
				k.dnsEvent(p, w)
			}
		}
	}
	return cfg
}

// dnsEvent posts a Warning event on the pod (best effort).
func (k *Kubelet) dnsEvent(p *corev1.Pod, msg string) {
	reason := "DNSConfigForming"
	if strings.Contains(msg, "ClusterDNS") {
		reason = "MissingClusterDNS"
	}
	now := metav1.NewTime(k.now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: p.Name + ".", Namespace: p.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name,
			UID: p.UID, ResourceVersion: p.ResourceVersion},
		Reason: reason, Message: msg, Type: corev1.EventTypeWarning, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: "kubelet", Host: k.cfg.NodeName},
	}
	ctx, cancel := context.WithTimeout(k.runCtx(context.Background()), 5*time.Second)
	defer cancel()
	if _, err := k.cfg.Client.CoreV1().Events(p.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		k.log.Debug("post DNS event", "pod", p.Name, "err", err)
	}
}
