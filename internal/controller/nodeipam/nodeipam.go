package nodeipam

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/metrics"
)

// Controller is the node IPAM controller.
type Controller struct {
	client   kubernetes.Interface
	nodes    corelisters.NodeLister
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
	metrics  *metrics.Metrics
	synced   cache.InformerSynced

	mu    sync.Mutex
	alloc *Allocator
	held  map[string]*net.IPNet // node name → its range
}

// New wires the controller; it returns nil (not applicable) without a
// cluster CIDR.
func New(cc *controller.Context) (controller.Controller, error) {
	if cc.Options.ClusterCIDR == nil {
		return nil, nil
	}
	alloc, err := NewAllocator(cc.Options.ClusterCIDR, cc.Options.NodeCIDRMaskSize)
	if err != nil {
		return nil, err
	}
	inf := cc.Informers.Core().V1().Nodes()
	c := &Controller{
		client: cc.Client, nodes: inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodeipam"}),
		recorder: cc.Recorder("node-ipam-controller"),
		log:      cc.Logger.With("controller", "nodeipam"),
		metrics:  cc.Metrics,
		synced:   inf.Informer().HasSynced,
		alloc:    alloc,
		held:     map[string]*net.IPNet{},
	}
	_, err = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.queue.Add(obj.(*corev1.Node).Name) },
		UpdateFunc: func(_, cur any) { c.queue.Add(cur.(*corev1.Node).Name) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				c.queue.Add(n.Name)
			}
		},
	})
	return c, err
}

// Run allocates ranges until ctx ends. One worker: allocation is serial.
func (c *Controller) Run(ctx context.Context, _ int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return
	}
	// Ranges existing nodes hold are taken before anything is handed out.
	nodes, _ := c.nodes.List(labels.Everything())
	c.mu.Lock()
	for _, n := range nodes {
		if _, cidr, err := net.ParseCIDR(n.Spec.PodCIDR); err == nil && c.alloc.Occupy(cidr) {
			c.held[n.Name] = cidr
		}
	}
	c.mu.Unlock()
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		for c.next(ctx) {
		}
	}, time.Second)
	<-ctx.Done()
}

func (c *Controller) next(ctx context.Context) bool {
	return controller.ProcessNext(ctx, c.queue, "nodeipam", c.metrics, c.log, controller.NoResult(c.sync))
}

func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodes.Get(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if apierrors.IsNotFound(err) {
		if cidr, ok := c.held[name]; ok {
			c.alloc.Release(cidr)
			delete(c.held, name)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if node.Spec.PodCIDR != "" {
		if _, cidr, err := net.ParseCIDR(node.Spec.PodCIDR); err == nil {
			if _, ok := c.held[name]; !ok && c.alloc.Occupy(cidr) {
				c.held[name] = cidr
			}
		}
		return nil
	}
	cidr, ok := c.held[name]
	if !ok {
		cidr, err = c.alloc.Allocate()
		if errors.Is(err, ErrFull) {
			c.recorder.Eventf(node, corev1.EventTypeWarning, "CIDRNotAvailable", "Node %s status is now: CIDRNotAvailable", name)
			return err
		}
		if err != nil {
			return err
		}
		c.held[name] = cidr
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": node.UID},
		"spec":     map[string]any{"podCIDR": cidr.String(), "podCIDRs": []string{cidr.String()}},
	})
	_, err = c.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		c.alloc.Release(cidr)
		delete(c.held, name)
		return nil
	}
	if err != nil {
		return err
	}
	c.recorder.Eventf(node, corev1.EventTypeNormal, "CIDRAssignmentSucceeded", "Node %s CIDR %s assigned", name, cidr)
	return nil
}
