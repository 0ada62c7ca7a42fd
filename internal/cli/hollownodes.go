package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/hollownode"
)

func runHollowNodes(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("skiff hollow-nodes", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster to join (required)")
	count := fs.Int("count", 0, "number of nodes to simulate (required, at least 1)")
	prefix := fs.String("name-prefix", hollownode.DefaultNamePrefix, "node names are <prefix><index>")
	cpu := fs.String("cpu", hollownode.DefaultCPU, "each node's CPU capacity")
	memory := fs.String("memory", hollownode.DefaultMemory, "each node's memory capacity")
	pods := fs.String("pods", hollownode.DefaultPods, "each node's pod capacity")
	var labelList []string
	fs.Var(listFlag{&labelList}, "node-label", "extra node labels, k=v,...")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	if *count < 1 {
		return fmt.Errorf("--count %d: must be at least 1", *count)
	}
	labels := map[string]string{}
	for _, kv := range labelList {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--node-label %q: want key=value", kv)
		}
		labels[k] = v
	}
	cfg := hollownode.Config{Count: *count, NamePrefix: *prefix, CPU: *cpu, Memory: *memory, Pods: *pods,
		Labels: labels, Logger: env.Logger}
	for _, q := range []struct{ flag, v string }{{"cpu", *cpu}, {"memory", *memory}, {"pods", *pods}} {
		if v, err := resource.ParseQuantity(q.v); err != nil || v.Sign() <= 0 {
			return fmt.Errorf("--%s %q: want a positive quantity", q.flag, q.v)
		}
	}
	rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", *kubeconfig, err)
	}
	rc.UserAgent = "skiff-hollow-nodes"
	rc.QPS, rc.Burst = 1000, 2000
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	cfg.Client = cs
	nodes, err := hollownode.New(cfg)
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-nodes.Ready():
			fmt.Fprintf(env.Stdout, "skiff hollow-nodes is ready; %d nodes: %s..%s\n", *count, nodes.Names()[0], nodes.Names()[*count-1])
		case <-ctx.Done():
		}
	}()
	return nodes.Run(ctx)
}
