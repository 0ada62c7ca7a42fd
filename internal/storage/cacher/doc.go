// Package cacher is the watch cache: one per resource, in front of the
// etcd store. It keeps every object of the resource and a window of recent
// events in memory, fed by one list+watch of the underlying store, and
// serves LIST, WATCH and GETs at a given resourceVersion from memory.
// Writes pass through; it never writes on its own.
package cacher
