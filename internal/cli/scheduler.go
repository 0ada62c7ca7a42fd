package cli

import (
	"context"
	"errors"
	"flag"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/scheduler"
)

func runScheduler(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("skiff scheduler", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster to schedule for (required)")
	name := fs.String("scheduler-name", "default-scheduler", "the spec.schedulerName this scheduler serves")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	rc.UserAgent = "skiff-scheduler"
	rc.QPS, rc.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	s, err := scheduler.New(scheduler.Config{Client: cs, SchedulerName: *name, Logger: env.Logger})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
