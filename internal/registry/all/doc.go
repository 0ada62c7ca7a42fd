// Package all assembles every served resource: each group's registry plus
// its table printer. Adding a resource means adding it to its group's
// Resources(); nothing here changes.
package all
