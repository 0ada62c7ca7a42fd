package manager

import (
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/endpoints"
	"github.com/skiff-sh/skiff/internal/controller/endpointslice"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
)

// descriptor names a controller and builds it.
type descriptor struct {
	workers int
	new     func(*controller.Context) (controller.Controller, error)
}

// registry maps each controller name (as upstream's --controllers spells
// it, without the "-controller" suffix) to its constructor.
var registry = map[string]descriptor{
	"endpoint":      {5, func(c *controller.Context) (controller.Controller, error) { return endpoints.New(c) }},
	"endpointslice": {5, func(c *controller.Context) (controller.Controller, error) { return endpointslice.New(c) }},
	"replicaset":    {5, func(c *controller.Context) (controller.Controller, error) { return replicaset.New(c) }},
}

// aliases are upstream's other spellings of the same controllers.
var aliases = map[string]string{
	"endpoints":         "endpoint",
	"endpoint-slice":    "endpointslice",
	"garbage-collector": "garbagecollector",
	"node-ipam":         "nodeipam",
	"service-account":   "serviceaccount",
}
