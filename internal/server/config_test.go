package server

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"port zero", func(c *Config) { c.HTTPSPort = 0 }, "--https-listen-port"},
		{"port too big", func(c *Config) { c.HTTPSPort = 70000 }, "--https-listen-port"},
		{"bad bind", func(c *Config) { c.BindAddress = "nope" }, "--bind-address"},
		{"bad advertise", func(c *Config) { c.AdvertiseAddress = "1.2.3" }, "--advertise-address"},
		{"bad service cidr", func(c *Config) { c.ServiceCIDR = "10.43.0.0" }, "--service-cidr"},
		{"tiny service cidr", func(c *Config) { c.ServiceCIDR = "10.43.0.0/32" }, "--service-cidr"},
		{"bad cluster cidr", func(c *Config) { c.ClusterCIDR = "x" }, "--cluster-cidr"},
		{"cluster dns in the service cidr", func(c *Config) { c.ClusterDNS = "10.43.5.5" }, ""},
		{"bad cluster dns", func(c *Config) { c.ClusterDNS = "ten" }, "--cluster-dns"},
		{"cluster dns outside the service cidr", func(c *Config) { c.ClusterDNS = "10.44.0.10" }, "--cluster-dns"},
		{"service cidr without a 10th address", func(c *Config) { c.ServiceCIDR = "10.43.0.0/30" }, "--cluster-dns"},
		{"bad cluster domain", func(c *Config) { c.ClusterDomain = "Not_A_Domain" }, "--cluster-domain"},
		{"bad service lb pool", func(c *Config) { c.ServiceLBPool = "10.0.0.0" }, "--service-lb-pool"},
		{"etcd tls without servers", func(c *Config) { c.EtcdCAFile = "/ca" }, "--etcd-servers"},
		{"issuer name without colon", func(c *Config) { c.ServiceAccountIssuer = "skiff" }, ""},
		{"http issuer", func(c *Config) { c.ServiceAccountIssuer = "http://issuer" }, "--service-account-issuer"},
		{"issuer with query", func(c *Config) { c.ServiceAccountIssuer = "https://issuer?x=1" }, "--service-account-issuer"},
		{"empty issuer", func(c *Config) { c.ServiceAccountIssuer = "" }, "--service-account-issuer"},
		{"empty audience", func(c *Config) { c.APIAudiences = []string{" "} }, "--api-audiences"},
		{"disable ServiceAccount admission", func(c *Config) { c.DisableAdmissionPlugins = []string{"ServiceAccount"} }, ""},
		{"disable unknown admission", func(c *Config) { c.DisableAdmissionPlugins = []string{"Nope"} }, "--disable-admission-plugins"},
		{"no mutating request limit", func(c *Config) { c.MaxMutatingRequestsInflight = 0 }, ""},
		{"negative mutating request limit", func(c *Config) { c.MaxMutatingRequestsInflight = -1 }, "--max-mutating-requests-inflight"},
		{"etcd cert without key", func(c *Config) { c.EtcdServers = []string{"https://e:2379"}; c.EtcdCertFile = "/c" }, "--etcd-keyfile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestClusterDNSIP(t *testing.T) {
	c := DefaultConfig()
	ip, err := c.ClusterDNSIP()
	if err != nil || ip.String() != "10.43.0.10" {
		t.Fatalf("default cluster DNS %v, %v; want 10.43.0.10", ip, err)
	}
	c.ServiceCIDR = "172.20.0.0/24"
	if ip, err = c.ClusterDNSIP(); err != nil || ip.String() != "172.20.0.10" {
		t.Fatalf("cluster DNS of 172.20.0.0/24: %v, %v", ip, err)
	}
}
