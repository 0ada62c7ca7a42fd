package apiserver

import (
	"net/http"
	"strings"
)

// requestInfo is what a resource path says: which resource, which object,
// which verb.
type requestInfo struct {
	Group, Version string
	Namespace      string // "" for cluster-scoped or all-namespaces requests
	Resource       string
	Name           string
	Subresource    string
	Verb           string // get list watch create update patch delete deletecollection
	// LegacyWatch: the path started with /watch/ (deprecated form).
	LegacyWatch bool
}

// parseResourcePath splits /api/v1/... or /apis/G/V/... into a
// requestInfo. ok is false for paths that are not resource paths (those are
// discovery or 404).
func parseResourcePath(r *http.Request) (info requestInfo, ok bool) {
	parts := splitPath(r.URL.Path)
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		info.Version = parts[1]
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		info.Group, info.Version = parts[1], parts[2]
		parts = parts[3:]
	default:
		return info, false
	}
	if len(parts) > 0 && parts[0] == "watch" {
		info.LegacyWatch = true
		parts = parts[1:]
	}
	if len(parts) == 0 {
		return info, false
	}
	// namespaces/{ns}/{resource}/... ; namespaces/{name}[/{sub}] is the
	// namespace object itself.
	if parts[0] == "namespaces" && len(parts) >= 3 && parts[2] != "status" && parts[2] != "finalize" {
		info.Namespace = parts[1]
		parts = parts[2:]
	}
	info.Resource = parts[0]
	if len(parts) > 1 {
		info.Name = parts[1]
	}
	if len(parts) > 2 {
		info.Subresource = parts[2]
	}
	// Only proxy subresources take a path after them
	// (nodes/{name}/proxy/{path}).
	if len(parts) > 3 && parts[2] != "proxy" {
		return info, false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case info.LegacyWatch || isTrue(r.URL.Query().Get("watch")):
			info.Verb = "watch"
		case info.Name == "":
			info.Verb = "list"
		default:
			info.Verb = "get"
		}
	case http.MethodPost:
		info.Verb = "create"
	case http.MethodPut:
		info.Verb = "update"
	case http.MethodPatch:
		info.Verb = "patch"
	case http.MethodDelete:
		if info.Name == "" {
			info.Verb = "deletecollection"
		} else {
			info.Verb = "delete"
		}
	default:
		info.Verb = strings.ToLower(r.Method)
	}
	return info, true
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func isTrue(s string) bool { return s == "true" || s == "1" }
