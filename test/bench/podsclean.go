package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/agent/images"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
)

// cleanNode removes every sandbox left in dataDir's containerd (containers
// outlive a stopped agent in their shims): it runs a bare containerd on the
// data dir, stops and removes the sandboxes through CRI, and stops it.
// Then it unmounts the containerd state tmpfs the agent mounted.
func cleanNode(dataDir string) error {
	if err := removeSandboxes(dataDir); err != nil {
		return err
	}
	return containerd.UnmountState(dataDir)
}

func removeSandboxes(dataDir string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sup, err := containerd.New(containerd.Config{DataDir: dataDir, SandboxImage: images.PauseImage, Logger: log,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-sup.Ready():
	case err := <-done:
		done <- err
		return fmt.Errorf("containerd for clean-up: %w", err)
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("containerd for clean-up not ready")
	}
	c, err := cri.Dial(sup.Endpoint(), 30*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	sbs, err := c.ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	for _, sb := range sbs {
		if err := c.StopPodSandbox(ctx, sb.Id); err != nil {
			return err
		}
		if err := c.RemovePodSandbox(ctx, sb.Id); err != nil {
			return err
		}
		if uid := sb.Labels["io.kubernetes.pod.uid"]; uid != "" {
			// Guaranteed pods' cgroups are in kubepods/, the others' in
			// kubepods/burstable/ or kubepods/besteffort/.
			dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods/pod" + uid)
			qos, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods/*/pod" + uid)
			dirs = append(dirs, qos...)
			for _, d := range dirs {
				os.Remove(d)
			}
		}
	}
	return nil
}

// waitNoSandboxes waits until dataDir's containerd runs no sandbox.
func waitNoSandboxes(ctx context.Context, dataDir string, timeout time.Duration) error {
	c, err := cri.Dial(containerd.Socket(dataDir), 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if sbs, err := c.ListPodSandbox(ctx, nil); err == nil && len(sbs) == 0 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("sandboxes still running after %v", timeout)
}
