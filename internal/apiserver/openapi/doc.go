// Package openapi serves the OpenAPI v2 (/openapi/v2, JSON and protobuf)
// and v3 (/openapi/v3 with per-group-version hashed URLs) documents of the
// served resources. Schemas come from openapi-gen output over k8s.io/api
// (generated/, see hack/update-openapi.sh); paths are built from the
// registry. Documents are built lazily on first request and cached.
package openapi
