package manager

import (
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/cronjob"
	"github.com/skiff-sh/skiff/internal/controller/job"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
	"github.com/skiff-sh/skiff/internal/controller/ttlafterfinished"
)

// descriptor names a controller and builds it.
type descriptor struct {
	workers int
	new     func(*controller.Context) (controller.Controller, error)
}

// registry maps each controller name (as upstream's --controllers spells
// it, without the "-controller" suffix) to its constructor.
var registry = map[string]descriptor{
	"cronjob":            {5, func(c *controller.Context) (controller.Controller, error) { return cronjob.New(c) }},
	"job":                {5, func(c *controller.Context) (controller.Controller, error) { return job.New(c) }},
	"replicaset":         {5, func(c *controller.Context) (controller.Controller, error) { return replicaset.New(c) }},
	"ttl-after-finished": {5, func(c *controller.Context) (controller.Controller, error) { return ttlafterfinished.New(c) }},
}

// aliases are upstream's other spellings of the same controllers.
var aliases = map[string]string{
	"garbage-collector": "garbagecollector",
	"node-ipam":         "nodeipam",
	"service-account":   "serviceaccount",
}
