package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageStatus returns the image a reference names, or nil if the runtime
// does not have it.
func (c *Client) ImageStatus(ctx context.Context, ref string) (*runtimeapi.Image, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return nil, fmt.Errorf("image status %s: %w", ref, err)
	}
	return r.Image, nil
}

// ListImages lists the images that match filter (all if nil).
func (c *Client) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.Images.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return r.Images, nil
}

// PullImage pulls an image with optional registry credentials and returns
// the image reference the runtime stored it under. Unlike other calls it
// has no timeout of its own, as upstream's: a large image on a slow link
// takes what it takes; ctx ends it.
func (c *Client) PullImage(ctx context.Context, ref string, auth *runtimeapi.AuthConfig, sandbox *runtimeapi.PodSandboxConfig) (string, error) {
	r, err := c.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth, SandboxConfig: sandbox})
	if err != nil {
		return "", fmt.Errorf("pull image %s: %w", ref, err)
	}
	return r.ImageRef, nil
}
