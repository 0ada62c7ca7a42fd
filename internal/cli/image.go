package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/internal/server"
)

// runImage dispatches `skiff image <subcommand>`; only import exists.
func runImage(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprintln(env.Stderr, "Usage: skiff image import [--data-dir DIR] FILE.tar")
		return errUsage
	}
	fs := flag.NewFlagSet("skiff image import", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: skiff image import [--data-dir DIR] FILE.tar\n\n"+
			"Imports an image tarball (OCI layout or docker-archive) into the agent's containerd;\n"+
			"if it is not running, queues the file in DIR/agent/images for the agent's next start.")
		fs.PrintDefaults()
	}
	dataDir := fs.String("data-dir", server.DefaultConfig().DataDir, "data directory of the agent")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	res, err := images.ImportIntoAgent(ctx, *dataDir, fs.Arg(0))
	if err != nil {
		return err
	}
	if res.Queued != "" {
		fmt.Fprintf(env.Stdout, "containerd of %s is not running: queued %s, imported when the agent starts\n", *dataDir, res.Queued)
		return nil
	}
	for _, r := range res.Refs {
		fmt.Fprintf(env.Stdout, "imported %s\n", r)
	}
	return nil
}
