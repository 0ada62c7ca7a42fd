// Command skiff is the whole cluster in one binary; see `skiff help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/skiff-sh/skiff/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
