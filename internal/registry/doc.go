// Package registry describes API resources to the API server: what a
// resource is called (group, version, plural, kind, short names), how its
// objects are made, defaulted, validated and prepared for create and update
// (the Strategy), which field selectors it supports, and how it prints as a
// Table.
//
// One sub-package per resource under registry/<group>/<resource> fills a
// *Resource; registry/all lists them. Adding a resource is one new package
// plus one line in registry/all. This package must not talk to storage or
// HTTP; the API server drives the Strategy.
package registry
