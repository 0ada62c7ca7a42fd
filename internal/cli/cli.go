package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// commands maps each subcommand name to its implementation.
var commands = map[string]command{
	"server":             {"run the control plane (API server on embedded etcd, scheduler)", runServer},
	"dns":                {"serve cluster DNS for Services and pods (--kubeconfig)", runDNS},
	"controller-manager": {"run the controllers against a cluster (--kubeconfig)", runControllerManager},
	"agent":              {"run a node: containerd and the kubelet (--kubeconfig)", runAgent},
	"proxy":              {"program a node's Service rules in nftables (--kubeconfig)", runProxy},
	"hollow-nodes":       {"simulate N nodes that run pods without containers (--kubeconfig)", runHollowNodes},
	"image":              {"import an image tarball into the agent's containerd (image import FILE.tar)", runImage},
	"scheduler":          {"run a scheduler against a cluster (--kubeconfig)", runScheduler},
	"version":            {"print the version", runVersion},
}

// Env is what a subcommand may touch besides its flags.
type Env struct {
	Stdout, Stderr io.Writer
	Logger         *slog.Logger
}

// errUsage marks a command-line mistake: exit code 2, usage already printed.
var errUsage = errors.New("usage")

// Run executes `skiff <args>` and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	env := &Env{Stdout: stdout, Stderr: stderr, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "skiff: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, env, args[1:]); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(stderr, "skiff %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: skiff <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
}

// parse parses flags, turning a parse error into errUsage (the flag package
// already printed it).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

// listFlag is a comma-separated list flag.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	*l.v = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}
