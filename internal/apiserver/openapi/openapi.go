package openapi

import (
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/openapiconv"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-sh/skiff/internal/api/scheme"
	"github.com/skiff-sh/skiff/internal/apiserver/openapi/generated"
	"github.com/skiff-sh/skiff/internal/registry"
)

// OpenAPI holds the documents for a set of resources.
type OpenAPI struct {
	resources []*registry.Resource
	defs      func() spec.Definitions // v3 schemas
	defsV2    func() spec.Definitions // the same with the v2 variants openapi-gen embeds
	v2        *handler.OpenAPIService
	v3        *handler3.OpenAPIService
}

// New prepares the documents for resources; nothing is built until the
// first request.
func New(resources []*registry.Resource) (*OpenAPI, error) {
	for _, r := range resources {
		if _, err := scheme.Scheme.New(r.GroupVersion().WithKind(r.Kind)); err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", r.GroupVersionResource, err)
		}
	}
	o := &OpenAPI{resources: resources}
	o.defs = sync.OnceValue(func() spec.Definitions { return forVersion(definitions(), false) })
	o.defsV2 = sync.OnceValue(func() spec.Definitions { return forVersion(definitions(), true) })
	o.v2 = handler.NewOpenAPIServiceLazy(cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		sw := o.swagger(nil)
		sw.Definitions = o.defsV2()
		return sw, "", nil
	})))
	o.v3 = handler3.NewOpenAPIService()
	for _, gv := range o.groupVersions() {
		gv := gv
		o.v3.UpdateGroupVersionLazy(gvPath(gv), cached.Once(cached.Func(func() (*spec3.OpenAPI, string, error) {
			return o.v3Doc(gv), "", nil
		})))
	}
	return o, nil
}

// Install registers /openapi/v2 and /openapi/v3 on mux.
func (o *OpenAPI) Install(mux *http.ServeMux) {
	o.v2.RegisterOpenAPIVersionedService("/openapi/v2", mux)
	_ = o.v3.RegisterOpenAPIV3VersionedService("/openapi/v3", prefixMux{mux})
}

type prefixMux struct{ *http.ServeMux }

func (m prefixMux) HandlePrefix(p string, h http.Handler) { m.Handle(p, h) }

var _ common.PathHandlerByGroupVersion = prefixMux{}

func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

func (o *OpenAPI) groupVersions() []schema.GroupVersion {
	seen := map[schema.GroupVersion]bool{}
	var out []schema.GroupVersion
	for _, r := range o.resources {
		if gv := r.GroupVersion(); !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}

// definitions turns openapi-gen output into named schemas with the
// x-kubernetes-group-version-kind extension on every kind the scheme
// knows, as kube-apiserver publishes them.
func definitions() spec.Definitions {
	ref := func(name string) spec.Ref { return spec.MustCreateRef("#/definitions/" + name) }
	defs := spec.Definitions{}
	for name, d := range generated.GetOpenAPIDefinitions(ref) {
		defs[name] = d.Schema
	}
	gvks := map[string][]interface{}{}
	for gvk, t := range scheme.Scheme.AllKnownTypes() {
		if gvk.Version == "__internal" {
			continue
		}
		m, ok := reflect.New(t).Interface().(interface{ OpenAPIModelName() string })
		if !ok {
			continue
		}
		name := m.OpenAPIModelName()
		if _, ok := defs[name]; !ok {
			continue
		}
		gvks[name] = append(gvks[name], map[string]interface{}{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
	}
	for name, list := range gvks {
		sort.Slice(list, func(i, j int) bool { return fmt.Sprint(list[i]) < fmt.Sprint(list[j]) })
		s := defs[name]
		s.AddExtension("x-kubernetes-group-version-kind", list)
		defs[name] = s
	}
	return defs
}

// forVersion picks, for types whose v3 schema uses what v2 cannot express
// (oneOf: Quantity, IntOrString), the v2 schema openapi-gen embedded in an
// extension, and drops that extension.
func forVersion(defs spec.Definitions, v2 bool) spec.Definitions {
	for name, d := range defs {
		embedded, ok := d.Extensions[common.ExtensionV2Schema]
		if !ok {
			continue
		}
		delete(d.Extensions, common.ExtensionV2Schema)
		if v2 {
			if s, ok := embedded.(spec.Schema); ok {
				gvk, hasGVK := d.Extensions["x-kubernetes-group-version-kind"]
				d = s
				if hasGVK {
					d.AddExtension("x-kubernetes-group-version-kind", gvk)
				}
			}
		}
		defs[name] = d
	}
	return defs
}

// swagger builds a v2 document with the paths of the given group version
// (nil: all) and every definition.
func (o *OpenAPI) swagger(only *schema.GroupVersion) *spec.Swagger {
	paths := map[string]spec.PathItem{}
	for _, r := range o.resources {
		if only != nil && r.GroupVersion() != *only {
			continue
		}
		for p, item := range resourcePaths(r) {
			paths[p] = item
		}
	}
	return &spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Swagger:     "2.0",
		Info:        &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: "v1.37.2"}},
		Paths:       &spec.Paths{Paths: paths},
		Definitions: o.defs(),
		SecurityDefinitions: spec.SecurityDefinitions{"BearerToken": &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication"}}},
		Security: []map[string][]string{{"BearerToken": {}}},
	}}
}

// v3Doc is one group version's v3 document, with only the schemas its
// paths reach.
func (o *OpenAPI) v3Doc(gv schema.GroupVersion) *spec3.OpenAPI {
	sw := o.swagger(&gv)
	sw.Definitions = reachable(sw)
	doc := openapiconv.ConvertV2ToV3(sw)
	return doc
}

// reachable keeps the definitions the paths refer to, transitively.
func reachable(sw *spec.Swagger) spec.Definitions {
	all := sw.Definitions
	keep := spec.Definitions{}
	var visit func(s *spec.Schema)
	var visitRef = func(r spec.Ref) {
		name := strings.TrimPrefix(r.String(), "#/definitions/")
		if name == "" || name == r.String() {
			return
		}
		if _, done := keep[name]; done {
			return
		}
		d, ok := all[name]
		if !ok {
			return
		}
		keep[name] = d
		visit(&d)
	}
	visit = func(s *spec.Schema) {
		if s == nil {
			return
		}
		visitRef(s.Ref)
		for i := range s.AllOf {
			visit(&s.AllOf[i])
		}
		for _, p := range s.Properties {
			p := p
			visit(&p)
		}
		if s.Items != nil {
			visit(s.Items.Schema)
			for i := range s.Items.Schemas {
				visit(&s.Items.Schemas[i])
			}
		}
		if s.AdditionalProperties != nil {
			visit(s.AdditionalProperties.Schema)
		}
	}
	for _, item := range sw.Paths.Paths {
		for _, op := range []*spec.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op == nil {
				continue
			}
			for i := range op.Parameters {
				visit(op.Parameters[i].Schema)
			}
			if op.Responses != nil {
				for _, resp := range op.Responses.StatusCodeResponses {
					visit(resp.Schema)
				}
			}
		}
	}
	// Status and the meta types every response may carry.
	for _, name := range []string{"io.k8s.apimachinery.pkg.apis.meta.v1.Status", "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"} {
		visitRef(spec.MustCreateRef("#/definitions/" + name))
	}
	return keep
}
