package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/dns"
)

func runDNS(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("skiff dns", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster whose Services are served (required)")
	cfg := dns.Config{Logger: env.Logger}
	fs.StringVar(&cfg.ListenAddr, "listen", "127.0.0.1:53", "UDP and TCP address to serve")
	fs.StringVar(&cfg.ClusterDomain, "cluster-domain", dns.DefaultClusterDomain, "the cluster's DNS zone")
	fs.Var(listFlag{&cfg.Upstreams}, "upstream", "comma-separated IP[:port] resolvers for other names (default: nameservers of --resolv-conf)")
	fs.StringVar(&cfg.ResolvConf, "resolv-conf", dns.DefaultResolvConf, "resolv.conf whose nameservers are the upstreams when --upstream is empty")
	fs.DurationVar(&cfg.TTL, "ttl", dns.DefaultTTL, "TTL of the cluster's records")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", *kubeconfig, err)
	}
	rc.UserAgent = "skiff-dns"
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", *kubeconfig, err)
	}
	cfg.Client = cs
	s, err := dns.New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
