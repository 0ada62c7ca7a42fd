package all

import (
	"fmt"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/apps"
	"github.com/skiff-sh/skiff/internal/registry/authentication"
	"github.com/skiff-sh/skiff/internal/registry/authorization"
	"github.com/skiff-sh/skiff/internal/registry/batch"
	"github.com/skiff-sh/skiff/internal/registry/certificates"
	"github.com/skiff-sh/skiff/internal/registry/coordination"
	"github.com/skiff-sh/skiff/internal/registry/core"
	"github.com/skiff-sh/skiff/internal/registry/discovery"
	"github.com/skiff-sh/skiff/internal/registry/events"
	"github.com/skiff-sh/skiff/internal/registry/networking"
	"github.com/skiff-sh/skiff/internal/registry/policy"
	"github.com/skiff-sh/skiff/internal/registry/printers"
	"github.com/skiff-sh/skiff/internal/registry/rbac"
	"github.com/skiff-sh/skiff/internal/registry/scheduling"
	"github.com/skiff-sh/skiff/internal/registry/storage"
)

// Resources returns every resource the API server serves, core first, each
// with its table columns.
func Resources(opts core.Options) ([]*registry.Resource, error) {
	coreRes, err := core.Resources(opts)
	if err != nil {
		return nil, fmt.Errorf("core registry: %w", err)
	}
	groups := [][]*registry.Resource{
		coreRes,
		apps.Resources(),
		batch.Resources(),
		certificates.Resources(),
		coordination.Resources(),
		discovery.Resources(),
		events.Resources(),
		scheduling.Resources(),
		policy.Resources(),
		networking.Resources(),
		storage.Resources(),
		rbac.Resources(),
		authorization.Resources(),
		authentication.Resources(),
	}
	var out []*registry.Resource
	for _, g := range groups {
		for _, r := range g {
			if r.Table == nil {
				r.Table = printers.For(r.GroupVersionResource)
			}
			out = append(out, r)
		}
	}
	return out, nil
}
