// Package scheme holds the one runtime.Scheme and CodecFactory the server
// uses: every k8s.io/api type client-go knows, plus meta.k8s.io/v1 (Table,
// PartialObjectMetadata, WatchEvent) and apidiscovery v2/v2beta1. It only
// registers types; it holds no other state.
package scheme
