package manager

import (
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/clusterroleaggregation"
	"github.com/skiff-sh/skiff/internal/controller/cronjob"
	"github.com/skiff-sh/skiff/internal/controller/csrapproving"
	"github.com/skiff-sh/skiff/internal/controller/csrcleaner"
	"github.com/skiff-sh/skiff/internal/controller/csrsigning"
	"github.com/skiff-sh/skiff/internal/controller/daemonset"
	"github.com/skiff-sh/skiff/internal/controller/deployment"
	"github.com/skiff-sh/skiff/internal/controller/disruption"
	"github.com/skiff-sh/skiff/internal/controller/endpoints"
	"github.com/skiff-sh/skiff/internal/controller/endpointslice"
	"github.com/skiff-sh/skiff/internal/controller/garbagecollector"
	"github.com/skiff-sh/skiff/internal/controller/job"
	"github.com/skiff-sh/skiff/internal/controller/namespace"
	"github.com/skiff-sh/skiff/internal/controller/nodeipam"
	"github.com/skiff-sh/skiff/internal/controller/nodelifecycle"
	"github.com/skiff-sh/skiff/internal/controller/persistentvolume"
	"github.com/skiff-sh/skiff/internal/controller/podgc"
	"github.com/skiff-sh/skiff/internal/controller/pvcprotection"
	"github.com/skiff-sh/skiff/internal/controller/pvprotection"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
	"github.com/skiff-sh/skiff/internal/controller/replicationcontroller"
	"github.com/skiff-sh/skiff/internal/controller/resourcequota"
	"github.com/skiff-sh/skiff/internal/controller/rootcacertpublisher"
	"github.com/skiff-sh/skiff/internal/controller/serviceaccount"
	"github.com/skiff-sh/skiff/internal/controller/servicelb"
	"github.com/skiff-sh/skiff/internal/controller/statefulset"
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
	"deployment":         {5, func(c *controller.Context) (controller.Controller, error) { return deployment.New(c) }},
	"garbagecollector":   {20, func(c *controller.Context) (controller.Controller, error) { return garbagecollector.New(c) }},
	"namespace":          {5, func(c *controller.Context) (controller.Controller, error) { return namespace.New(c) }},
	"nodeipam":           {1, nodeipam.New},
	"serviceaccount":     {2, func(c *controller.Context) (controller.Controller, error) { return serviceaccount.New(c) }},
	"nodelifecycle":      {2, func(c *controller.Context) (controller.Controller, error) { return nodelifecycle.New(c) }},
	"replicaset":         {5, func(c *controller.Context) (controller.Controller, error) { return replicaset.New(c) }},
	"endpoint":           {5, func(c *controller.Context) (controller.Controller, error) { return endpoints.New(c) }},
	"endpointslice":      {5, func(c *controller.Context) (controller.Controller, error) { return endpointslice.New(c) }},
	"cronjob":            {5, func(c *controller.Context) (controller.Controller, error) { return cronjob.New(c) }},
	"job":                {5, func(c *controller.Context) (controller.Controller, error) { return job.New(c) }},
	"ttl-after-finished": {5, func(c *controller.Context) (controller.Controller, error) { return ttlafterfinished.New(c) }},
	"statefulset":        {5, func(c *controller.Context) (controller.Controller, error) { return statefulset.New(c) }},
	"daemonset":          {5, func(c *controller.Context) (controller.Controller, error) { return daemonset.New(c) }},
	"replicationcontroller": {5, func(c *controller.Context) (controller.Controller, error) {
		return replicationcontroller.New(c)
	}},
	"podgc":         {1, func(c *controller.Context) (controller.Controller, error) { return podgc.New(c) }},
	"resourcequota": {5, func(c *controller.Context) (controller.Controller, error) { return resourcequota.New(c) }},
	"disruption":    {5, func(c *controller.Context) (controller.Controller, error) { return disruption.New(c) }},
	"servicelb":     {2, func(c *controller.Context) (controller.Controller, error) { return servicelb.New(c) }},
	"persistentvolume-binder": {1, func(c *controller.Context) (controller.Controller, error) {
		return persistentvolume.New(c)
	}},
	"csrapproving":  {5, func(c *controller.Context) (controller.Controller, error) { return csrapproving.New(c) }},
	"csrsigning":    {5, func(c *controller.Context) (controller.Controller, error) { return csrsigning.New(c) }},
	csrcleaner.Name: {1, func(c *controller.Context) (controller.Controller, error) { return csrcleaner.New(c) }},
	clusterroleaggregation.Name: {1, func(c *controller.Context) (controller.Controller, error) {
		return clusterroleaggregation.New(c)
	}},
	pvcprotection.Name: {1, func(c *controller.Context) (controller.Controller, error) { return pvcprotection.New(c) }},
	pvprotection.Name:  {1, func(c *controller.Context) (controller.Controller, error) { return pvprotection.New(c) }},
	rootcacertpublisher.Name: {1, func(c *controller.Context) (controller.Controller, error) {
		return rootcacertpublisher.New(c)
	}},
}

// aliases are upstream's other spellings of the same controllers.
var aliases = map[string]string{
	"endpoints":                           "endpoint",
	"endpoint-slice":                      "endpointslice",
	"garbage-collector":                   "garbagecollector",
	"node-ipam":                           "nodeipam",
	"node-lifecycle":                      "nodelifecycle",
	"pod-garbage-collector":               "podgc",
	"service-account":                     "serviceaccount",
	"service-lb":                          "servicelb",
	"persistentvolume":                    "persistentvolume-binder",
	"certificatesigningrequest-approving": "csrapproving",
	"certificatesigningrequest-signing":   "csrsigning",
	"certificatesigningrequest-cleaner":   "csrcleaner",
}
