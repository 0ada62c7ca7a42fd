package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/proxy"
)

// runProxy runs `skiff proxy`: the Service proxy of one node, alone (the
// agent runs the same proxy in-process).
func runProxy(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("skiff proxy", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster whose Services are proxied (required)")
	cfg := proxy.Config{Logger: env.Logger}
	fs.StringVar(&cfg.NodeName, "node-name", "", "this node's name: local endpoints and NodePort addresses (default: host name)")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "", "pod network CIDR; other sources are masqueraded to ClusterIPs (default: the Node's podCIDR)")
	fs.StringVar(&cfg.Table, "table", proxy.DefaultTable, "nftables table (family ip) the proxy owns")
	metricsAddr := fs.String("metrics-bind-address", "", "host:port to serve sync metrics on, over plain HTTP at /metrics (default: off)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--node-name: host name: %w", err)
		}
		cfg.NodeName = h
	}
	rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", *kubeconfig, err)
	}
	rc.UserAgent = "skiff-proxy"
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", *kubeconfig, err)
	}
	cfg.Client = cs
	p, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(p.Metrics().Collectors()...)
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-bind-address: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
	}
	go func() {
		select {
		case <-p.Ready():
			fmt.Fprintf(env.Stdout, "skiff proxy is ready; table: ip %s\n", p.Table())
		case <-ctx.Done():
		}
	}()
	return p.Run(ctx)
}
