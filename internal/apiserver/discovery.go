package apiserver

import (
	"net/http"
	"sort"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// discoveryCache holds the discovery documents, built once: the set of
// resources is fixed for the life of the server.
type discoveryCache struct {
	groups        map[string]metav1.APIGroup
	groupOrder    []string
	resourceLists map[schema.GroupVersion]*metav1.APIResourceList
	aggCore       *apidiscoveryv2.APIGroupDiscoveryList
	aggGroups     *apidiscoveryv2.APIGroupDiscoveryList
}

var defaultVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

func subresourceKind(res *resource, name string, kind string) schema.GroupVersionKind {
	switch {
	case kind == "" || kind == res.Kind:
		return res.gvk
	case kind == "Scale":
		return schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
	case kind == "Eviction":
		return schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}
	case kind == "Binding":
		return schema.GroupVersionKind{Version: "v1", Kind: "Binding"}
	case kind == "TokenRequest":
		return schema.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}
	}
	return schema.GroupVersionKind{Version: res.Version, Group: res.Group, Kind: kind}
}

func subresourceVerbs(name string, verbs []string) []string {
	if len(verbs) > 0 {
		return verbs
	}
	switch name {
	case "binding", "eviction":
		return []string{"create"}
	case "finalize":
		return []string{"update"}
	}
	return []string{"get", "patch", "update"}
}

func newDiscoveryCache(s *Server) *discoveryCache {
	d := &discoveryCache{
		groups:        map[string]metav1.APIGroup{},
		resourceLists: map[schema.GroupVersion]*metav1.APIResourceList{},
		aggCore:       &apidiscoveryv2.APIGroupDiscoveryList{},
		aggGroups:     &apidiscoveryv2.APIGroupDiscoveryList{},
	}
	for _, group := range s.groups {
		var versions []schema.GroupVersion
		for gv := range s.byGV {
			if gv.Group == group {
				versions = append(versions, gv)
			}
		}
		sort.Slice(versions, func(i, j int) bool { return versions[i].Version < versions[j].Version })
		g := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: group}
		agg := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: group}}
		for _, gv := range versions {
			g.Versions = append(g.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version})
			list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
			aggVersion := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
			for _, res := range s.byGV[gv] {
				list.APIResources = append(list.APIResources, metav1.APIResource{
					Name: res.Resource.Resource, SingularName: res.SingularName, Namespaced: res.Namespaced,
					Kind: res.Kind, Verbs: res.verbs(), ShortNames: res.ShortNames, Categories: res.Categories,
				})
				scope := apidiscoveryv2.ScopeCluster
				if res.Namespaced {
					scope = apidiscoveryv2.ScopeNamespace
				}
				gvk := res.gvk
				ar := apidiscoveryv2.APIResourceDiscovery{
					Resource: res.Resource.Resource, SingularResource: res.SingularName, Scope: scope,
					ResponseKind: &metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
					Verbs:        res.verbs(), ShortNames: res.ShortNames, Categories: res.Categories,
				}
				subs := make([]string, 0, len(res.Subresources))
				for name := range res.Subresources {
					subs = append(subs, name)
				}
				sort.Strings(subs)
				for _, name := range subs {
					sub := res.Subresources[name]
					kind := subresourceKind(res, name, sub.Kind)
					verbs := subresourceVerbs(name, sub.Verbs)
					list.APIResources = append(list.APIResources, metav1.APIResource{
						Name: res.Resource.Resource + "/" + name, Namespaced: res.Namespaced,
						Group: kind.Group, Version: kind.Version, Kind: kind.Kind, Verbs: verbs,
					})
					ar.Subresources = append(ar.Subresources, apidiscoveryv2.APISubresourceDiscovery{
						Subresource:  name,
						ResponseKind: &metav1.GroupVersionKind{Group: kind.Group, Version: kind.Version, Kind: kind.Kind},
						Verbs:        verbs,
					})
				}
				aggVersion.Resources = append(aggVersion.Resources, ar)
			}
			d.resourceLists[gv] = list
			agg.Versions = append(agg.Versions, aggVersion)
		}
		if len(g.Versions) > 0 {
			g.PreferredVersion = g.Versions[0]
		}
		if group == "" {
			d.aggCore.Items = append(d.aggCore.Items, agg)
			continue
		}
		d.groups[group] = g
		d.groupOrder = append(d.groupOrder, group)
		d.aggGroups.Items = append(d.aggGroups.Items, agg)
	}
	d.aggCore.Kind, d.aggCore.APIVersion = "APIGroupDiscoveryList", "apidiscovery.k8s.io/v2"
	d.aggGroups.Kind, d.aggGroups.APIVersion = "APIGroupDiscoveryList", "apidiscovery.k8s.io/v2"
	return d
}

// serveDiscovery answers discovery paths; false means "not a discovery
// path".
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) bool {
	parts := splitPath(r.URL.Path)
	d := s.discovery
	isDiscovery := len(parts) > 0 && ((parts[0] == "api" && len(parts) <= 2) || (parts[0] == "apis" && len(parts) <= 3))
	if !isDiscovery {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.methodNotAllowed(w, r)
		return true
	}
	switch {
	case len(parts) == 1 && parts[0] == "api":
		if s.serveAggregated(w, r, d.aggCore) {
			return true
		}
		s.writeDiscovery(w, r, &metav1.APIVersions{
			TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
			Versions:                   []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}},
		})
		return true
	case len(parts) == 1 && parts[0] == "apis":
		if s.serveAggregated(w, r, d.aggGroups) {
			return true
		}
		list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
		for _, g := range d.groupOrder {
			list.Groups = append(list.Groups, d.groups[g])
		}
		s.writeDiscovery(w, r, list)
		return true
	case len(parts) == 2 && parts[0] == "api":
		if l, ok := d.resourceLists[schema.GroupVersion{Version: parts[1]}]; ok {
			s.writeDiscovery(w, r, l)
			return true
		}
		s.serveNotFound(w, r)
		return true
	case len(parts) == 2 && parts[0] == "apis":
		if g, ok := d.groups[parts[1]]; ok {
			s.writeDiscovery(w, r, &g)
			return true
		}
		s.serveNotFound(w, r)
		return true
	case len(parts) == 3 && parts[0] == "apis":
		if l, ok := d.resourceLists[schema.GroupVersion{Group: parts[1], Version: parts[2]}]; ok {
			s.writeDiscovery(w, r, l)
			return true
		}
		s.serveNotFound(w, r)
		return true
	}
	s.serveNotFound(w, r)
	return true
}

// writeDiscovery writes a legacy discovery document as JSON (or protobuf
// when asked), with the meta v1 types' version.
func (s *Server) writeDiscovery(w http.ResponseWriter, r *http.Request, obj runtime.Object) {
	info, _, ok := s.codecs.negotiateOutput(r, nil)
	if !ok {
		info, _ = s.codecs.serializerFor(runtime.ContentTypeJSON)
	}
	s.writeObjectWith(w, http.StatusOK, info, schema.GroupVersion{Version: "v1"}, obj)
}

// serveAggregated answers with an APIGroupDiscoveryList if the Accept
// header asks for one (v2 or v2beta1) before anything else it accepts.
func (s *Server) serveAggregated(w http.ResponseWriter, r *http.Request, list *apidiscoveryv2.APIGroupDiscoveryList) bool {
	for _, mt := range parseAccept(r.Header.Get("Accept")) {
		if mt.As == "" {
			return false
		}
		if mt.As != "APIGroupDiscoveryList" || mt.Group != "apidiscovery.k8s.io" {
			continue
		}
		info, ok := s.codecs.serializerFor(mt.Type)
		if !ok {
			continue
		}
		var obj runtime.Object = list
		gv := apidiscoveryv2.SchemeGroupVersion
		switch mt.Ver {
		case "v2":
		case "v2beta1":
			obj = toV2beta1(list)
			gv = apidiscoveryv2beta1.SchemeGroupVersion
		default:
			continue
		}
		w.Header().Set("Vary", "Accept")
		ct := info.MediaType + ";g=apidiscovery.k8s.io;v=" + mt.Ver + ";as=APIGroupDiscoveryList"
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		if err := encodeObject(info, gv, obj, w); err != nil {
			s.log.Debug("encode discovery", "err", err)
		}
		return true
	}
	return false
}

// toV2beta1 converts the v2 document field by field (the types are
// identical in shape).
func toV2beta1(in *apidiscoveryv2.APIGroupDiscoveryList) *apidiscoveryv2beta1.APIGroupDiscoveryList {
	out := &apidiscoveryv2beta1.APIGroupDiscoveryList{}
	out.Kind, out.APIVersion = "APIGroupDiscoveryList", "apidiscovery.k8s.io/v2beta1"
	for _, g := range in.Items {
		og := apidiscoveryv2beta1.APIGroupDiscovery{ObjectMeta: g.ObjectMeta}
		for _, v := range g.Versions {
			ov := apidiscoveryv2beta1.APIVersionDiscovery{Version: v.Version, Freshness: apidiscoveryv2beta1.DiscoveryFreshness(v.Freshness)}
			for _, r := range v.Resources {
				or := apidiscoveryv2beta1.APIResourceDiscovery{
					Resource: r.Resource, ResponseKind: r.ResponseKind, Scope: apidiscoveryv2beta1.ResourceScope(r.Scope),
					SingularResource: r.SingularResource, Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
				}
				for _, sr := range r.Subresources {
					or.Subresources = append(or.Subresources, apidiscoveryv2beta1.APISubresourceDiscovery{
						Subresource: sr.Subresource, ResponseKind: sr.ResponseKind, Verbs: sr.Verbs, AcceptedTypes: sr.AcceptedTypes,
					})
				}
				ov.Resources = append(ov.Resources, or)
			}
			og.Versions = append(og.Versions, ov)
		}
		out.Items = append(out.Items, og)
	}
	return out
}
