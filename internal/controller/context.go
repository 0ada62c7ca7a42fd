package controller

import (
	"context"
	"log/slog"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-sh/skiff/internal/api/scheme"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Options are the tunables controllers read.
type Options struct {
	// ClusterCIDR is the pod network node IPAM carves per-node ranges from.
	ClusterCIDR *net.IPNet
	// NodeCIDRMaskSize is the prefix length of each node's podCIDR.
	NodeCIDRMaskSize int
	// NodeMonitorGracePeriod: a node without a heartbeat for this long is
	// marked Ready=Unknown.
	NodeMonitorGracePeriod time.Duration
	// TerminatedPodGCThreshold: pod GC deletes terminated pods beyond it.
	TerminatedPodGCThreshold int
	// ServiceLBPool, when set, is where ServiceLB takes LoadBalancer
	// addresses from; nil gives the Ready nodes' InternalIPs.
	ServiceLBPool *net.IPNet
	// ClusterSigningCertFile and ClusterSigningKeyFile: the CA the CSR
	// signer uses; empty means the signer does nothing.
	ClusterSigningCertFile string
	ClusterSigningKeyFile  string
	// ClusterSigningDuration is the longest lifetime of a signed
	// certificate (0: one year).
	ClusterSigningDuration time.Duration
	// RootCA (PEM) is the cluster CA published in every namespace as the
	// kube-root-ca.crt ConfigMap; empty: the publisher does nothing.
	RootCA []byte
}

// Context is what a controller is built from. Controllers share one
// informer factory so each resource is watched once per process.
type Context struct {
	Client    kubernetes.Interface
	Metadata  metadata.Interface
	Discovery discovery.DiscoveryInterface
	Informers informers.SharedInformerFactory
	// MetadataInformers serve the garbage collector's watches of every
	// resource (metadata only).
	MetadataInformers metadatainformer.SharedInformerFactory
	Broadcaster       record.EventBroadcaster
	Logger            *slog.Logger
	Options           Options
	// Metrics record each controller's syncs; nil records nothing.
	Metrics *metrics.Metrics
}

// Recorder returns an event recorder reporting as component.
func (c *Context) Recorder(component string) record.EventRecorder {
	return c.Broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}

// Controller is a running control loop.
type Controller interface {
	// Run processes work with the given number of workers until ctx ends.
	Run(ctx context.Context, workers int)
}
