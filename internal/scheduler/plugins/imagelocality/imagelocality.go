// Package imagelocality prefers nodes that already hold a pod's container
// images, by the images' size (pulling a big image is slow).
package imagelocality

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "ImageLocality"

// Upstream's thresholds: below minThreshold an image is not worth
// preferring a node for; at maxThreshold per container the score is full.
const (
	mb           = 1024 * 1024
	minThreshold = 23 * mb
	maxThreshold = 1000 * mb
)

// ImageLocality is the plugin.
type ImageLocality struct{}

func (ImageLocality) Name() string { return Name }

// Score sums the sizes of the pod's images present on the node and scales
// the sum between the thresholds to 0..100. (Upstream also weighs each
// image by how many nodes hold it; that spread factor is not applied yet.)
func (ImageLocality) Score(_ context.Context, _ *framework.CycleState, pod *corev1.Pod, n *framework.NodeInfo) (int64, *framework.Status) {
	if len(n.Node.Status.Images) == 0 {
		return 0, nil // nothing pulled: below minThreshold
	}
	sizes := map[string]int64{}
	for _, img := range n.Node.Status.Images {
		for _, name := range img.Names {
			sizes[Normalize(name)] = img.SizeBytes
		}
	}
	var sum int64
	containers := 0
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			containers++
			sum += sizes[Normalize(cs[i].Image)]
		}
	}
	if containers == 0 {
		return 0, nil
	}
	maxSum := int64(maxThreshold * containers)
	switch {
	case sum < minThreshold:
		return 0, nil
	case sum > maxSum:
		sum = maxSum
	}
	return framework.MaxNodeScore * (sum - minThreshold) / (maxSum - minThreshold), nil
}

// Normalize turns an image reference into the form nodes report:
// docker.io/library/ for bare names and :latest when untagged.
func Normalize(image string) string {
	name, digest, hasDigest := strings.Cut(image, "@")
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash {
		name = "docker.io/library/" + name
	} else if !strings.ContainsAny(first, ".:") && first != "localhost" {
		name = "docker.io/" + name
	}
	if hasDigest {
		return name + "@" + digest
	}
	if i := strings.LastIndex(name, ":"); i < 0 || strings.Contains(name[i:], "/") {
		name += ":latest"
	}
	return name
}

var _ framework.ScorePlugin = ImageLocality{}
