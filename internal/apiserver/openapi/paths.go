package openapi

import (
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-sh/skiff/internal/api/scheme"
	"github.com/skiff-sh/skiff/internal/registry"
)

const metaPrefix = "io.k8s.apimachinery.pkg.apis.meta.v1."

var (
	readTypes  = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	watchTypes = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
		"application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"}
	patchTypes = []string{"application/json-patch+json", "application/merge-patch+json",
		"application/strategic-merge-patch+json", "application/apply-patch+yaml"}
)

// modelName is the definition name of a kind's Go type.
func modelName(gvk schema.GroupVersionKind) string {
	obj, err := scheme.Scheme.New(gvk)
	if err != nil {
		return ""
	}
	if m, ok := obj.(interface{ OpenAPIModelName() string }); ok {
		return m.OpenAPIModelName()
	}
	if m, ok := reflect.ValueOf(obj).Elem().Interface().(interface{ OpenAPIModelName() string }); ok {
		return m.OpenAPIModelName()
	}
	return ""
}

func ref(name string) *spec.Schema {
	return &spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef("#/definitions/" + name)}}
}

// groupName is the operation ID part for a group: "Core", "Apps",
// "Coordination" (for coordination.k8s.io), as kube-apiserver names them.
func groupName(g string) string {
	if g == "" {
		return "Core"
	}
	g = strings.TrimSuffix(g, ".k8s.io")
	var b strings.Builder
	for _, part := range strings.FieldsFunc(g, func(r rune) bool { return r == '.' || r == '-' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func queryParam(name, typ, desc string) spec.Parameter {
	return spec.Parameter{
		ParamProps:        spec.ParamProps{Name: name, In: "query", Description: desc},
		SimpleSchema:      spec.SimpleSchema{Type: typ},
		CommonValidations: spec.CommonValidations{UniqueItems: true},
	}
}

var (
	pPretty          = queryParam("pretty", "string", "If 'true', then the output is pretty printed.")
	pDryRun          = queryParam("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid value: All")
	pFieldManager    = queryParam("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes.")
	pFieldValidation = queryParam("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.")
	pForce           = queryParam("force", "boolean", "Force is going to \"force\" Apply requests. It must be unset for non-apply patch requests.")
	pGrace           = queryParam("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted.")
	pPropagation     = queryParam("propagationPolicy", "string", "Whether and how garbage collection will be performed: Orphan, Background or Foreground.")
	pOrphan          = queryParam("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy.")
	listParams       = []spec.Parameter{
		queryParam("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
		queryParam("continue", "string", "The continue option should be set when retrieving more results from the server."),
		queryParam("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
		queryParam("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
		queryParam("limit", "integer", "limit is a maximum number of responses to return for a list call."),
		queryParam("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
		queryParam("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
		queryParam("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true` to stream the current state first."),
		queryParam("timeoutSeconds", "integer", "Timeout for the list/watch call."),
		queryParam("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
	}
)

func bodyParam(schemaName string) spec.Parameter {
	return spec.Parameter{ParamProps: spec.ParamProps{Name: "body", In: "body", Required: true, Schema: ref(schemaName)}}
}

func pathParam(name, desc string) spec.Parameter {
	return spec.Parameter{
		ParamProps:        spec.ParamProps{Name: name, In: "path", Required: true, Description: desc},
		SimpleSchema:      spec.SimpleSchema{Type: "string"},
		CommonValidations: spec.CommonValidations{UniqueItems: true},
	}
}

func responses(codes map[int]string) *spec.Responses {
	r := &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: map[int]spec.Response{}}}
	for code, name := range codes {
		desc := map[int]string{200: "OK", 201: "Created", 202: "Accepted"}[code]
		r.StatusCodeResponses[code] = spec.Response{ResponseProps: spec.ResponseProps{Description: desc, Schema: ref(name)}}
	}
	r.StatusCodeResponses[401] = spec.Response{ResponseProps: spec.ResponseProps{Description: "Unauthorized"}}
	return r
}

type opSpec struct {
	verb, action, id string
	gvk              schema.GroupVersionKind
	params           []spec.Parameter
	consumes         []string
	produces         []string
	resp             map[int]string
	desc             string
}

func (s opSpec) build(tag string) *spec.Operation {
	op := &spec.Operation{OperationProps: spec.OperationProps{
		ID: s.id, Description: s.desc, Tags: []string{tag}, Schemes: []string{"https"},
		Consumes: s.consumes, Produces: s.produces, Parameters: s.params, Responses: responses(s.resp),
	}}
	if len(op.Consumes) == 0 {
		op.Consumes = []string{"*/*"}
	}
	op.AddExtension("x-kubernetes-action", s.action)
	op.AddExtension("x-kubernetes-group-version-kind", map[string]interface{}{"group": s.gvk.Group, "version": s.gvk.Version, "kind": s.gvk.Kind})
	return op
}

// resourcePaths returns the v2 paths kube-apiserver publishes for r.
func resourcePaths(r *registry.Resource) map[string]spec.PathItem {
	gv := r.GroupVersion()
	gvk := gv.WithKind(r.Kind)
	kindModel, listModel := modelName(gvk), modelName(gv.WithKind(r.Kind+"List"))
	if kindModel == "" {
		return nil
	}
	tag := strings.ToLower(groupName(gv.Group)[:1]) + groupName(gv.Group)[1:] + "_" + gv.Version
	prefix := "/" + gvPath(gv)
	idBase := groupName(gv.Group) + strings.ToUpper(gv.Version[:1]) + gv.Version[1:]
	ns := ""
	var nsParams []spec.Parameter
	if r.Namespaced {
		ns = "Namespaced"
		nsParams = []spec.Parameter{pathParam("namespace", "object name and auth scope, such as for teams and projects")}
	}
	collection := prefix + "/" + r.Resource
	if r.Namespaced {
		collection = prefix + "/namespaces/{namespace}/" + r.Resource
	}
	item := collection + "/{name}"
	nameParam := pathParam("name", "name of the "+r.Kind)
	writeParams := []spec.Parameter{pDryRun, pFieldManager, pFieldValidation}
	deleteParams := []spec.Parameter{bodyParam(metaPrefix + "DeleteOptions"), pDryRun, pGrace, pOrphan, pPropagation}
	paths := map[string]spec.PathItem{}

	collItem := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: append(append([]spec.Parameter{}, nsParams...), pPretty)}}
	collItem.Get = opSpec{verb: "get", action: "list", id: "list" + idBase + ns + r.Kind, gvk: gvk, params: listParams,
		produces: watchTypes, resp: map[int]string{200: listModel}, desc: "list or watch objects of kind " + r.Kind}.build(tag)
	collItem.Post = opSpec{action: "post", id: "create" + idBase + ns + r.Kind, gvk: gvk,
		params: append([]spec.Parameter{bodyParam(kindModel)}, writeParams...), produces: readTypes,
		resp: map[int]string{200: kindModel, 201: kindModel, 202: kindModel}, desc: "create a " + r.Kind}.build(tag)
	collItem.Delete = opSpec{action: "deletecollection", id: "delete" + idBase + "Collection" + ns + r.Kind, gvk: gvk,
		params: append(append([]spec.Parameter{}, deleteParams...), listParams...), produces: readTypes,
		resp: map[int]string{200: metaPrefix + "Status"}, desc: "delete collection of " + r.Kind}.build(tag)
	paths[collection] = collItem
	if r.Review != nil { // a create-only review: POST only, as upstream
		collItem.Get, collItem.Delete = nil, nil
		paths[collection] = collItem
		return paths
	}

	it := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: append(append([]spec.Parameter{nameParam}, nsParams...), pPretty)}}
	it.Get = opSpec{action: "get", id: "read" + idBase + ns + r.Kind, gvk: gvk, produces: readTypes,
		resp: map[int]string{200: kindModel}, desc: "read the specified " + r.Kind}.build(tag)
	it.Put = opSpec{action: "put", id: "replace" + idBase + ns + r.Kind, gvk: gvk,
		params: append([]spec.Parameter{bodyParam(kindModel)}, writeParams...), produces: readTypes,
		resp: map[int]string{200: kindModel, 201: kindModel}, desc: "replace the specified " + r.Kind}.build(tag)
	it.Patch = opSpec{action: "patch", id: "patch" + idBase + ns + r.Kind, gvk: gvk,
		params:   append([]spec.Parameter{bodyParam(metaPrefix + "Patch")}, append(append([]spec.Parameter{}, writeParams...), pForce)...),
		consumes: patchTypes, produces: readTypes,
		resp: map[int]string{200: kindModel, 201: kindModel}, desc: "partially update the specified " + r.Kind}.build(tag)
	it.Delete = opSpec{action: "delete", id: "delete" + idBase + ns + r.Kind, gvk: gvk, params: deleteParams, produces: readTypes,
		resp: map[int]string{200: kindModel, 202: kindModel}, desc: "delete a " + r.Kind}.build(tag)
	paths[item] = it

	if r.Namespaced {
		all := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: []spec.Parameter{pPretty}}}
		all.Get = opSpec{action: "list", id: "list" + idBase + r.Kind + "ForAllNamespaces", gvk: gvk, params: listParams,
			produces: watchTypes, resp: map[int]string{200: listModel}, desc: "list or watch objects of kind " + r.Kind}.build(tag)
		paths[prefix+"/"+r.Resource] = all
	}
	watchColl := prefix + "/watch/" + strings.TrimPrefix(collection, prefix+"/")
	wc := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: append(append(append([]spec.Parameter{}, nsParams...), pPretty), listParams...)}}
	wc.Get = opSpec{action: "watchlist", id: "watch" + idBase + ns + r.Kind + "List", gvk: gvk, produces: watchTypes,
		resp: map[int]string{200: metaPrefix + "WatchEvent"}, desc: "watch individual changes to a list of " + r.Kind}.build(tag)
	paths[watchColl] = wc
	wi := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: append(append(append([]spec.Parameter{nameParam}, nsParams...), pPretty), listParams...)}}
	wi.Get = opSpec{action: "watch", id: "watch" + idBase + ns + r.Kind, gvk: gvk, produces: watchTypes,
		resp: map[int]string{200: metaPrefix + "WatchEvent"}, desc: "watch changes to an object of kind " + r.Kind}.build(tag)
	paths[watchColl+"/{name}"] = wi

	subs := make([]string, 0, len(r.Subresources))
	for name := range r.Subresources {
		subs = append(subs, name)
	}
	sort.Strings(subs)
	for _, name := range subs {
		sub := r.Subresources[name]
		subKind, subGVK := r.Kind, gvk
		switch sub.Kind {
		case "Scale":
			subGVK = schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
		case "Binding":
			subGVK = gv.WithKind("Binding")
		case "Eviction":
			subGVK = schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}
		case "TokenRequest":
			subGVK = schema.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}
		}
		if sub.Kind != "" {
			subKind = sub.Kind
		}
		model := modelName(subGVK)
		if model == "" {
			continue
		}
		suffix := strings.ToUpper(name[:1]) + name[1:]
		p := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: append(append([]spec.Parameter{pathParam("name", "name of the "+subKind)}, nsParams...), pPretty)}}
		for _, verb := range sub.Verbs {
			switch verb {
			case "get":
				p.Get = opSpec{action: "get", id: "read" + idBase + ns + r.Kind + suffix, gvk: subGVK, produces: readTypes,
					resp: map[int]string{200: model}, desc: "read " + name + " of the specified " + r.Kind}.build(tag)
			case "update":
				p.Put = opSpec{action: "put", id: "replace" + idBase + ns + r.Kind + suffix, gvk: subGVK,
					params: append([]spec.Parameter{bodyParam(model)}, writeParams...), produces: readTypes,
					resp: map[int]string{200: model, 201: model}, desc: "replace " + name + " of the specified " + r.Kind}.build(tag)
			case "patch":
				p.Patch = opSpec{action: "patch", id: "patch" + idBase + ns + r.Kind + suffix, gvk: subGVK,
					params:   append([]spec.Parameter{bodyParam(metaPrefix + "Patch")}, append(append([]spec.Parameter{}, writeParams...), pForce)...),
					consumes: patchTypes, produces: readTypes,
					resp: map[int]string{200: model, 201: model}, desc: "partially update " + name + " of the specified " + r.Kind}.build(tag)
			case "create":
				p.Post = opSpec{action: "post", id: "create" + idBase + ns + r.Kind + suffix, gvk: subGVK,
					params: append([]spec.Parameter{bodyParam(model)}, writeParams...), produces: readTypes,
					resp: map[int]string{200: model, 201: model, 202: model}, desc: "create " + name + " of a " + r.Kind}.build(tag)
			}
		}
		paths[item+"/"+name] = p
	}
	return paths
}
