package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/skiff-sh/skiff/internal/server"
)

func runVersion(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("skiff version", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "skiff %s (Kubernetes API %s.%s)\n", server.Version.GitVersion, server.Version.Major, server.Version.Minor)
	return nil
}
