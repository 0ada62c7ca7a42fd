package core

import (
	"errors"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Options configure the core resources.
type Options struct {
	// ServiceCIDR is where Service clusterIPs come from.
	ServiceCIDR *net.IPNet
	// NodePortBase and NodePortSize give the NodePort range (30000, 2768).
	NodePortBase, NodePortSize int
}

// Validate rejects unusable options.
func (o *Options) Validate() error {
	if o.ServiceCIDR == nil {
		return errors.New("core: no service CIDR")
	}
	if o.NodePortBase <= 0 || o.NodePortSize <= 0 || o.NodePortBase+o.NodePortSize > 65536 {
		return fmt.Errorf("core: bad node port range %d+%d", o.NodePortBase, o.NodePortSize)
	}
	return nil
}

var gv = corev1.SchemeGroupVersion

// resource builds a descriptor with the common fields.
func resource(plural, kind string, namespaced bool, newFn, newList func() runtime.Object, s registry.Strategy) *registry.Resource {
	return &registry.Resource{
		GroupVersionResource: schema.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: plural},
		Kind:                 kind,
		SingularName:         lower(kind),
		Namespaced:           namespaced,
		New:                  newFn,
		NewList:              newList,
		Strategy:             s,
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// statusSub is the status subresource over a parent strategy.
func statusSub(parent registry.Strategy) *registry.Subresource {
	return &registry.Subresource{Strategy: &registry.StatusStrategy{Parent: parent}, Verbs: []string{"get", "patch", "update"}}
}

// Resources returns every core/v1 resource.
func Resources(opts Options) ([]*registry.Resource, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return []*registry.Resource{
		namespaces(),
		pods(),
		nodes(),
		services(opts),
		endpoints(),
		configMaps(),
		secrets(),
		events(),
		serviceAccounts(),
		limitRanges(),
		resourceQuotas(),
		persistentVolumes(),
		persistentVolumeClaims(),
		replicationControllers(),
		podTemplates(),
	}, nil
}
