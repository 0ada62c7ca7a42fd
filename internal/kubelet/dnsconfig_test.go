package kubelet

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodDNSConfig(t *testing.T) {
	host := &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1", "192.168.1.2"}, Searches: []string{"corp.example", "example"}, Options: []string{"edns0", "timeout:2"}}
	cluster := DNSSettings{ClusterDNS: []string{"10.43.0.10"}, ClusterDomain: "cluster.local", Host: host}
	noCluster := DNSSettings{ClusterDomain: "cluster.local", Host: host}
	str := func(s string) *string { return &s }
	pod := func(policy corev1.DNSPolicy, hostNet bool, c *corev1.PodDNSConfig) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "team"},
			Spec: corev1.PodSpec{DNSPolicy: policy, HostNetwork: hostNet, DNSConfig: c}}
	}
	clusterSearch := []string{"team.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "example"}
	many := func(n int, f string) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf(f, i))
		}
		return out
	}
	tests := []struct {
		name     string
		pod      *corev1.Pod
		s        DNSSettings
		want     *runtimeapi.DNSConfig
		warnings []string // substrings, one per warning
	}{{
		name: "ClusterFirst",
		pod:  pod(corev1.DNSClusterFirst, false, nil), s: cluster,
		want: &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10"}, Searches: clusterSearch, Options: []string{"ndots:5"}},
	}, {
		name: "empty policy is ClusterFirst",
		pod:  pod("", false, nil), s: cluster,
		want: &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10"}, Searches: clusterSearch, Options: []string{"ndots:5"}},
	}, {
		name: "ClusterFirst with host network falls back to Default",
		pod:  pod(corev1.DNSClusterFirst, true, nil), s: cluster,
		want: host,
	}, {
		name: "ClusterFirstWithHostNet",
		pod:  pod(corev1.DNSClusterFirstWithHostNet, true, nil), s: cluster,
		want: &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10"}, Searches: clusterSearch, Options: []string{"ndots:5"}},
	}, {
		name: "Default",
		pod:  pod(corev1.DNSDefault, false, nil), s: cluster,
		want: host,
	}, {
		name: "ClusterFirst without cluster DNS falls back to Default with a warning",
		pod:  pod(corev1.DNSClusterFirst, false, nil), s: noCluster,
		want: host, warnings: []string{"does not have ClusterDNS IP configured"},
	}, {
		name: "None with dnsConfig",
		pod: pod(corev1.DNSNone, false, &corev1.PodDNSConfig{Nameservers: []string{"1.2.3.4"}, Searches: []string{"ns1.svc.cluster-domain.example", "my.dns.search.suffix"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: str("2")}, {Name: "edns0"}}}), s: cluster,
		want: &runtimeapi.DNSConfig{Servers: []string{"1.2.3.4"}, Searches: []string{"ns1.svc.cluster-domain.example", "my.dns.search.suffix"}, Options: []string{"ndots:2", "edns0"}},
	}, {
		name: "None without dnsConfig is empty",
		pod:  pod(corev1.DNSNone, false, nil), s: cluster,
		want: &runtimeapi.DNSConfig{},
	}, {
		name: "ClusterFirst merges dnsConfig: duplicates dropped, options overridden by name",
		pod: pod(corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{Nameservers: []string{"10.43.0.10", "8.8.8.8"}, Searches: []string{"cluster.local", "extra"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: str("1")}, {Name: "single-request"}}}), s: cluster,
		want: &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10", "8.8.8.8"}, Searches: append(append([]string(nil), clusterSearch...), "extra"),
			Options: []string{"ndots:1", "single-request"}},
	}, {
		name: "Default merges dnsConfig",
		pod:  pod(corev1.DNSDefault, false, &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout", Value: str("5")}}}), s: cluster,
		want: &runtimeapi.DNSConfig{Servers: host.Servers, Searches: host.Searches, Options: []string{"edns0", "timeout:5"}},
	}, {
		name: "more than 3 nameservers are cut with a warning",
		pod:  pod(corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3"}}), s: cluster,
		want:     &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10", "1.1.1.1", "2.2.2.2"}, Searches: clusterSearch, Options: []string{"ndots:5"}},
		warnings: []string{"Nameserver limits were exceeded"},
	}, {
		name: "more than 32 search paths are cut with a warning",
		pod:  pod(corev1.DNSNone, false, &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: many(40, "s%d.example")}), s: cluster,
		want:     &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1"}, Searches: many(32, "s%d.example"), Options: []string{}},
		warnings: []string{"Search Line limits were exceeded"},
	}, {
		name: "search line longer than 2048 characters is cut",
		pod:  pod(corev1.DNSNone, false, &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: many(20, strings.Repeat("a", 200)+"%02d.x")}), s: cluster,
		want:     &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1"}, Searches: many(9, strings.Repeat("a", 200)+"%02d.x"), Options: []string{}},
		warnings: []string{"Search Line limits were exceeded"},
	}, {
		name: "cluster domain with a trailing dot",
		pod:  pod(corev1.DNSClusterFirst, false, nil), s: DNSSettings{ClusterDNS: []string{"10.43.0.10"}, ClusterDomain: "cluster.local.", Host: &runtimeapi.DNSConfig{}},
		want: &runtimeapi.DNSConfig{Servers: []string{"10.43.0.10"}, Searches: []string{"team.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}},
	}}
	norm := func(c *runtimeapi.DNSConfig) [3][]string {
		n := func(s []string) []string {
			if len(s) == 0 {
				return nil
			}
			return s
		}
		return [3][]string{n(c.Servers), n(c.Searches), n(c.Options)}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings := PodDNSConfig(tt.pod, tt.s)
			if !reflect.DeepEqual(norm(got), norm(tt.want)) {
				t.Errorf("config:\n got %v\nwant %v", norm(got), norm(tt.want))
			}
			if len(warnings) != len(tt.warnings) {
				t.Fatalf("warnings %q, want %d", warnings, len(tt.warnings))
			}
			for i, w := range tt.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %q does not contain %q", warnings[i], w)
				}
			}
		})
	}
	// The host's config is never mutated by a merge.
	if !reflect.DeepEqual(host.Options, []string{"edns0", "timeout:2"}) || len(host.Searches) != 2 {
		t.Errorf("host config changed: %v", host)
	}
}
