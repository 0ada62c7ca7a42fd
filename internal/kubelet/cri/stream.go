package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exec asks the runtime to prepare an exec session and returns the URL of
// its streaming server that serves it (once, within a short time).
func (c *Client) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.Runtime.Exec(ctx, req)
	if err != nil {
		return "", fmt.Errorf("exec in container %s: %w", req.ContainerId, err)
	}
	return r.Url, nil
}

// Attach asks the runtime to prepare an attach session to a running
// container and returns the URL of its streaming server that serves it.
func (c *Client) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.Runtime.Attach(ctx, req)
	if err != nil {
		return "", fmt.Errorf("attach to container %s: %w", req.ContainerId, err)
	}
	return r.Url, nil
}

// PortForward asks the runtime to prepare a port-forward session into a pod
// sandbox's network namespace and returns the URL that serves it.
func (c *Client) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.Runtime.PortForward(ctx, req)
	if err != nil {
		return "", fmt.Errorf("port-forward to sandbox %s: %w", req.PodSandboxId, err)
	}
	return r.Url, nil
}
