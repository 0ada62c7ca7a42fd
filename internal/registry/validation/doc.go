// Package validation holds upstream Kubernetes' validation rules for the
// parts several resources share (pod specs, label selectors, ports),
// returning field errors with upstream's paths and messages. It never
// mutates what it checks.
package validation
