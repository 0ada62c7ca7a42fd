package dns

import "errors"

// errNoUpstream: every upstream failed or none is configured.
var errNoUpstream = errors.New("no upstream answered")
