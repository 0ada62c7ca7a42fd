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
