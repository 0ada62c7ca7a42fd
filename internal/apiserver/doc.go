// Package apiserver serves the Kubernetes REST API over the registry's
// resources and the storage layer: routing, content negotiation (JSON, YAML,
// protobuf), the verbs (get, list, watch, create, update, patch, delete,
// deletecollection), subresources, discovery (legacy and aggregated),
// OpenAPI, tables, health and metrics, authentication by client
// certificate. It is the only component that holds a storage.Interface.
package apiserver
