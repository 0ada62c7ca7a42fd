// Package apiserver_test checks API semantics against a real `skiff
// server` with client-go and raw HTTP: informers, paging, selectors,
// object lifecycle, and that no malformed input causes a 5xx.
package apiserver_test

import (
	"os"
	"testing"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// srv is shared by the tests of this package; each test uses its own
// namespace.
var srv *framework.Server

func TestMain(m *testing.M) {
	// API semantics alone: controllers writing status would race the
	// tests' own writes (test/e2e/workloads covers them). Without the
	// serviceaccount controller no namespace gets its default account, so
	// ServiceAccount admission is off too, as in upstream's integration tests.
	os.Exit(framework.RunWithServer(m, &srv, "--disable-controllers", "--disable-admission-plugins", "ServiceAccount"))
}
