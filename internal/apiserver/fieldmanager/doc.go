// Package fieldmanager tracks field ownership (metadata.managedFields) and
// runs server-side apply, on apimachinery's managedfields with the type
// information client-go ships for every built-in kind. It performs no I/O.
package fieldmanager
