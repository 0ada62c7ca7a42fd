package cli

import (
	"context"
	"errors"
	"flag"

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
	s, err := scheduler.NewFromKubeconfig(*kubeconfig, *name, "", env.Logger)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
