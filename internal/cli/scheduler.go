package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/skiff-sh/skiff/internal/scheduler"
)

func runScheduler(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("skiff scheduler", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster to schedule for (required)")
	name := fs.String("scheduler-name", "default-scheduler", "the spec.schedulerName this scheduler serves (a --config profile's schedulerName wins)")
	config := fs.String("config", "", "KubeSchedulerConfiguration file (profile, plugins, percentageOfNodesToScore)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	cfg := scheduler.Config{SchedulerName: *name, LeaderElect: true, Logger: env.Logger}
	if *config != "" {
		fc, err := scheduler.LoadConfigFile(*config)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		fc.Apply(&cfg)
	}
	s, err := scheduler.NewFromKubeconfig(*kubeconfig, cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
