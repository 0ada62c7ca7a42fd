package cli

import (
	"context"
	"errors"
	"flag"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/controller/manager"
)

func runControllerManager(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("skiff controller-manager", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfg := manager.Config{LeaderElect: true, Logger: env.Logger}
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster to manage (required)")
	fs.Var(listFlag{&cfg.Controllers}, "controllers", "controllers to run: '*' all, 'name' one, '-name' all but one (comma-separated; known: "+strings.Join(manager.Names(), ", ")+")")
	fs.BoolVar(&cfg.LeaderElect, "leader-elect", true, "run controllers only while holding the kube-system/kube-controller-manager Lease")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "10.42.0.0/16", "network node podCIDRs are allocated from")
	fs.IntVar(&cfg.NodeCIDRMaskSize, "node-cidr-mask-size", 24, "prefix length of each node's podCIDR")
	fs.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", 0, "time without heartbeat before a node is marked unhealthy (default 40s)")
	fs.IntVar(&cfg.TerminatedPodGCThreshold, "terminated-pod-gc-threshold", 12500, "terminated pods kept before the pod garbage collector deletes the oldest (negative: keep all)")
	fs.StringVar(&cfg.ServiceLBPool, "service-lb-pool", "", "CIDR LoadBalancer Services get addresses from (default: the Ready nodes' InternalIPs)")
	fs.StringVar(&cfg.ClusterSigningCertFile, "cluster-signing-cert-file", "", "PEM CA certificate the CSR signer issues kubelet certificates with")
	fs.StringVar(&cfg.ClusterSigningKeyFile, "cluster-signing-key-file", "", "PEM private key of --cluster-signing-cert-file")
	fs.DurationVar(&cfg.ClusterSigningDuration, "cluster-signing-duration", 365*24*time.Hour, "lifetime of the certificates the CSR signer issues; a request's spec.expirationSeconds may shorten it")
	fs.StringVar(&cfg.MetricsBindAddress, "metrics-bind-address", "", "host:port to serve controller sync metrics on, over plain HTTP at /metrics (default: off)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	m, err := manager.NewFromKubeconfig(*kubeconfig, cfg)
	if err != nil {
		return err
	}
	return m.Run(ctx)
}
