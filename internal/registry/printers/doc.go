// Package printers produces the table columns kube-apiserver returns for
// `kubectl get` (Accept: ...;as=Table), per resource, from the external v1
// types. It only formats; it never reads or writes objects.
package printers
