// Command pause is skiff's sandbox (pause) image: the first process of every
// pod, holding its namespaces. Like upstream's pause.c it sleeps until
// SIGINT or SIGTERM and, as PID 1 of a shared PID namespace, reaps the
// zombies reparented to it. It is built static (CGO_ENABLED=0) by
// internal/agent/images.BuildPause.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version changes with the image tag in internal/agent/images.
const version = "2"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("skiff pause", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", s)
			os.Exit(0)
		}
		reap()
	}
}

// reap waits for every exited child; one SIGCHLD may stand for several.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
