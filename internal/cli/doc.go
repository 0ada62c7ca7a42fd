// Package cli parses `skiff` command lines into typed component configs and
// runs the chosen subcommand. One file per subcommand; no component logic
// lives here.
package cli
