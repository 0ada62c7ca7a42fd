// Package namespace empties a namespace being deleted: it deletes every
// namespaced resource in it (collection deletes per resource, as found by
// discovery), waits until nothing remains, and then removes the
// "kubernetes" finalizer through the namespace's finalize subresource so
// the API server deletes the namespace. Progress shows in the namespace's
// status conditions, as upstream reports it.
package namespace
