package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/skiff-sh/skiff/internal/server"
)

func runServer(ctx context.Context, env *Env, args []string) error {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("skiff server", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the database, certificates and kubeconfig")
	fs.IntVar(&cfg.HTTPSPort, "https-listen-port", cfg.HTTPSPort, "port the API server listens on (TLS)")
	fs.StringVar(&cfg.BindAddress, "bind-address", cfg.BindAddress, "address the API server listens on")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", cfg.AdvertiseAddress, "address other cluster members reach the API server at (default: the host's first address)")
	fs.StringVar(&cfg.ServiceCIDR, "service-cidr", cfg.ServiceCIDR, "network Service cluster IPs come from")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", cfg.ClusterCIDR, "network pod IPs come from")
	fs.Var(listFlag{&cfg.EtcdServers}, "etcd-servers", "comma-separated external etcd endpoints (default: embedded etcd)")
	fs.StringVar(&cfg.EtcdCAFile, "etcd-cafile", "", "CA bundle for the external etcd")
	fs.StringVar(&cfg.EtcdCertFile, "etcd-certfile", "", "client certificate for the external etcd")
	fs.StringVar(&cfg.EtcdKeyFile, "etcd-keyfile", "", "client key for the external etcd")
	fs.BoolVar(&cfg.DisableAgent, "disable-agent", false, "run the control plane only, without the node agent")
	fs.StringVar(&cfg.PodBridge, "pod-bridge", "", "Linux bridge of the node agent's pod network (default skiff0)")
	fs.StringVar(&cfg.ClusterDNS, "cluster-dns", "", "cluster IP of the kube-dns Service, the resolver of ClusterFirst pods (default: the 10th address of --service-cidr)")
	fs.StringVar(&cfg.ClusterDomain, "cluster-domain", cfg.ClusterDomain, "the cluster's DNS zone")
	fs.BoolVar(&cfg.DisableDNS, "disable-dns", false, "do not run the cluster DNS server in this server's node agent")
	fs.StringVar(&cfg.ServiceLBPool, "service-lb-pool", "", "CIDR LoadBalancer Services get addresses from (default: the Ready nodes' InternalIPs)")
	fs.BoolVar(&cfg.DisableScheduler, "disable-scheduler", false, "do not run the scheduler in this server")
	fs.StringVar(&cfg.SchedulerConfig, "scheduler-config", "", "KubeSchedulerConfiguration file for the scheduler in this server (profile, plugins, percentageOfNodesToScore)")
	fs.BoolVar(&cfg.DisableControllers, "disable-controllers", false, "do not run the controller manager in this server")
	fs.DurationVar(&cfg.ClusterSigningDuration, "cluster-signing-duration", cfg.ClusterSigningDuration, "lifetime of the certificates the CSR signer issues (kubelet client and serving certificates); a request's spec.expirationSeconds may shorten it")
	fs.StringVar(&cfg.ServiceAccountIssuer, "service-account-issuer", cfg.ServiceAccountIssuer, "issuer (iss claim) of service account tokens: an https URL or an opaque name")
	fs.BoolVar(&cfg.ExtendTokenExpiration, "service-account-extend-token-expiration", cfg.ExtendTokenExpiration,
		"issue the pods' admission-injected service account tokens for a year (with a warnafter claim at the requested hour), as upstream")
	fs.Var(listFlag{&cfg.APIAudiences}, "api-audiences", "comma-separated audiences the API server accepts in service account tokens (default: the issuer)")
	fs.Var(listFlag{&cfg.DisableAdmissionPlugins}, "disable-admission-plugins", "comma-separated built-in admission plugins to turn off (ServiceAccount)")
	fs.IntVar(&cfg.MaxMutatingRequestsInflight, "max-mutating-requests-inflight", cfg.MaxMutatingRequestsInflight,
		"mutating API requests of network clients served at once; the rest wait in a first come, first served line (429 with Retry-After past 1000 waiting or 15 s); 0: no limit")
	fs.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", cfg.NodeMonitorGracePeriod, "time without a heartbeat before a node is marked unhealthy")
	fs.Var(listFlag{&cfg.Controllers}, "controllers", "controllers to run: '*' all, 'name' one, '-name' all but one (comma-separated)")
	nf := nodeFlags{}
	nf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.NodeLabels, cfg.NodeTaints, cfg.ContainerRuntimeEndpoint, cfg.CNIConfDir = nf.labels, nf.taints, nf.runtimeEndpoint, nf.cniConfDir
	cfg.Logger = env.Logger
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-srv.Ready():
			// One line for people and scripts: the cluster is usable now.
			fmt.Fprintf(env.Stdout, "skiff server is ready; kubeconfig: %s\n", cfg.KubeconfigPath())
		case <-ctx.Done():
		}
	}()
	return srv.Run(ctx)
}
